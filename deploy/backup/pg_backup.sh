#!/usr/bin/env bash
# Nightly PostgreSQL backup of the MES database: pg_dump custom format, checked, kept 30 days.
#
# Connection: DATABASE_URL (the kernel's, "+asyncpg" is dropped) if set, else libpq's own
# variables (PGHOST, PGPORT, PGUSER, PGDATABASE, ~/.pgpass). Settings:
#   BACKUP_DIR      where dumps go            (default /var/backups/mes)
#   RETENTION_DAYS  delete dumps older than   (default 30)
#   MIN_KEEP        always keep this many newest dumps, however old (default 3), so a backup
#                   job that stopped working never ends up deleting the last good dumps
# Schedule (deploy/backup/mes-backup.cron, the spec's 02:00):
#   0 2 * * *  mes  /opt/mes/deploy/backup/pg_backup.sh >> /var/log/neurohub/backup.log 2>&1
set -euo pipefail

BACKUP_DIR=${BACKUP_DIR:-/var/backups/mes}
RETENTION_DAYS=${RETENTION_DAYS:-30}
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
trap 'rm -f "$partial"' EXIT

log "dumping $name to $final"
pg_dump "${target[@]}" --format=custom --compress=6 --file "$partial"
# A dump that pg_restore cannot read is no backup.
pg_restore --list "$partial" > /dev/null
mv "$partial" "$final"
(cd "$BACKUP_DIR" && sha256sum "$(basename "$final")" > "$(basename "$final").sha256")
log "done: $(du -h "$final" | cut -f1)"

# Retention: newest first; skip the MIN_KEEP newest, delete the rest older than RETENTION_DAYS.
cutoff=$(( $(date +%s) - RETENTION_DAYS * 86400 ))
kept=0
while IFS= read -r dump; do
    kept=$(( kept + 1 ))
    (( kept <= MIN_KEEP )) && continue
    if (( $(stat -c %Y "$dump") < cutoff )); then
        log "deleting $(basename "$dump") (older than $RETENTION_DAYS days)"
        rm -f "$dump" "$dump.sha256"
    fi
done < <(ls -1t "$BACKUP_DIR"/mes-*.dump 2>/dev/null)
