#!/usr/bin/env bash
# Nightly backup of the MES database and its files folder: pg_dump custom format, checked, kept 30 days.
#
# Connection: DATABASE_URL (the kernel's, "+asyncpg" is dropped) if set, else libpq's own
# variables (PGHOST, PGPORT, PGUSER, PGDATABASE, ~/.pgpass). Settings:
#   BACKUP_DIR      where dumps go            (default /var/backups/mes)
#   FILES_DIR       the kernel's files folder (firmware images …), archived beside the dump as
#                   mes-<db>-<stamp>.files.tar (default /var/mes/files; skipped if absent)
#   RETENTION_DAYS  delete dumps older than   (default 30)
#   MIN_KEEP        always keep this many newest dumps, however old (default 3), so a backup
#                   job that stopped working never ends up deleting the last good dumps
# Schedule, the spec's 02:00: deploy/systemd/mes-backup.timer (+ .service), or the cron file
# deploy/backup/mes-backup.cron where systemd timers are not used.
#
# Consistency of files and dump: the database is dumped first, the folder archived after. Stored
# files are written before the row that names them is committed and never change afterwards
# (named by content hash), so every file the dump names is already on disk when the folder is
# archived; the backup checks that each of them is in the archive and fails (exit 3, both kept)
# if one is missing. Files that arrive after the dump are archived too and are harmless.
# pg_restore.sh puts the files back and checks every stored file against its SHA-256.
set -euo pipefail

BACKUP_DIR=${BACKUP_DIR:-/var/backups/mes}
RETENTION_DAYS=${RETENTION_DAYS:-30}
FILES_DIR=${FILES_DIR:-/var/mes/files}
MIN_KEEP=${MIN_KEEP:-3}

log() { printf '%s pg_backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

if [[ -n "${DATABASE_URL:-}" ]]; then
    target=(--dbname "${DATABASE_URL/+asyncpg/}")
    name=$(basename "${DATABASE_URL%%\?*}")
else
    name=${PGDATABASE:-mes}
    target=(--dbname "$name")
fi

umask 077
mkdir -p "$BACKUP_DIR"
exec 9>"$BACKUP_DIR/.pg_backup.lock"
if ! flock -n 9; then
    log "another backup is still running; not starting a second one"
    exit 1
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$BACKUP_DIR/mes-$name-$stamp.dump"
partial="$final.partial"
files_final="${final%.dump}.files.tar"
files_partial="$files_final.partial"
trap 'rm -f "$partial" "$files_partial"' EXIT

log "dumping $name to $final"
pg_dump "${target[@]}" --format=custom --compress=6 --file "$partial"
# A dump that pg_restore cannot read is no backup.
pg_restore --list "$partial" > /dev/null
mv "$partial" "$final"
(cd "$BACKUP_DIR" && sha256sum "$(basename "$final")" > "$(basename "$final").sha256")
log "dump done: $(du -h "$final" | cut -f1)"

missing=0
if [[ -d "$FILES_DIR" ]]; then
    log "archiving $FILES_DIR to $files_final"
    # Plain tar: firmware images do not compress, and a plain archive lists and extracts fastest.
    tar --create --file "$files_partial" --directory "$FILES_DIR" --sort=name .
    # The live files the dump names (stored_files rows not deleted), read from the dump itself.
    referenced=$(pg_restore --data-only --table=stored_files --file=- "$final" 2>/dev/null | awk -F'\t' '
        /^COPY [^ ]*stored_files \(/ {
            header = $0; sub(/^[^(]*\(/, "", header); sub(/\).*$/, "", header)
            n = split(header, cols, ", "); for (i = 1; i <= n; i++) pos[cols[i]] = i
            inside = 1; next
        }
        inside && $0 == "\\." { inside = 0; next }
        inside && $(pos["deleted_at"]) == "\\N" { print $(pos["path"]) }' | sort -u || true)
    if [[ -n "$referenced" ]]; then
        absent=$(comm -23 <(printf '%s\n' "$referenced") \
                          <(tar --list --file "$files_partial" | sed 's|^\./||' | sort -u))
        if [[ -n "$absent" ]]; then
            missing=$(printf '%s\n' "$absent" | wc -l)
            log "ERROR: $missing stored file(s) named by the database are not in $FILES_DIR:"
            printf '%s\n' "$absent" | head -20 | sed 's/^/    /'
        fi
    fi
    mv "$files_partial" "$files_final"
    (cd "$BACKUP_DIR" && sha256sum "$(basename "$files_final")" > "$(basename "$files_final").sha256")
    log "files done: $(du -h "$files_final" | cut -f1), $(printf '%s' "$referenced" | grep -c . || true) stored files named by the dump"
else
    log "no files folder at $FILES_DIR: database only"
fi

# Retention: newest first; skip the MIN_KEEP newest, delete the rest older than RETENTION_DAYS.
cutoff=$(( $(date +%s) - RETENTION_DAYS * 86400 ))
kept=0
while IFS= read -r dump; do
    kept=$(( kept + 1 ))
    (( kept <= MIN_KEEP )) && continue
    if (( $(stat -c %Y "$dump") < cutoff )); then
        log "deleting $(basename "$dump") (older than $RETENTION_DAYS days)"
        rm -f "$dump" "$dump.sha256" "${dump%.dump}.files.tar" "${dump%.dump}.files.tar.sha256"
    fi
done < <(ls -1t "$BACKUP_DIR"/mes-*.dump 2>/dev/null)
if (( missing > 0 )); then
    exit 3
fi
