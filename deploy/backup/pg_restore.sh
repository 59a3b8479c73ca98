#!/usr/bin/env bash
# Restore a dump made by pg_backup.sh into a database, replacing what is there, and put the
# files folder back (the .files.tar beside the dump), checking every stored file's SHA-256.
#
#   pg_restore.sh [--yes] [--create-db] [--files-dir DIR] DUMP_FILE [DATABASE]
#
# DATABASE defaults to PGDATABASE or "mes"; the connection uses libpq's variables (PGHOST,
# PGPORT, PGUSER, ~/.pgpass). Stop the kernel first (systemctl stop mes-kernel, or
# docker compose stop kernel): the restore drops and recreates every object of the dump.
#   --create-db  create DATABASE first if it does not exist (restoring onto a new server)
#   --yes        do not ask for confirmation
#   --files-dir  where the files go (default FILES_DIR, else /var/mes/files); files in it that the
#                archive does not have are left alone
# The dump's .sha256 file (and the archive's), when present, is checked first. The database is
# restored in one transaction: on any error nothing changes. Then every stored file the restored
# database names (stored_files rows not deleted) is checked against its SHA-256 in the files
# folder; any missing or different file fails the restore (exit 4) with the list.
set -euo pipefail

yes=0 create=0 files_dir=${FILES_DIR:-/var/mes/files}
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --yes) yes=1 ;;
        --create-db) create=1 ;;
        --files-dir) [[ $# -ge 2 ]] || { echo "--files-dir needs a folder" >&2; exit 2; }; files_dir=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 [--yes] [--create-db] [--files-dir DIR] DUMP_FILE [DATABASE]" >&2
    exit 2
fi
dump=$1
db=${2:-${PGDATABASE:-mes}}

log() { printf '%s pg_restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

[[ -r "$dump" ]] || { echo "cannot read $dump" >&2; exit 1; }
if [[ -f "$dump.sha256" ]]; then
    (cd "$(dirname "$dump")" && sha256sum --check --quiet "$(basename "$dump").sha256") \
        || { echo "checksum of $dump does not match; not restoring" >&2; exit 1; }
    log "checksum ok"
fi
pg_restore --list "$dump" > /dev/null
archive="${dump%.dump}.files.tar"
if [[ -f "$archive" && -f "$archive.sha256" ]]; then
    (cd "$(dirname "$archive")" && sha256sum --check --quiet "$(basename "$archive").sha256") \
        || { echo "checksum of $archive does not match; not restoring" >&2; exit 1; }
    log "files archive checksum ok"
fi

if (( ! yes )); then
    # No terminal (a script, a job): read finds no answer; say so instead of exiting in silence.
    read -r -p "Replace the contents of database '$db' with $dump? [y/N] " answer || answer=""
    [[ $answer == [yY]* ]] || { echo "not restored (no 'y'; --yes restores without asking)" >&2; exit 1; }
fi

exists=$(psql --dbname postgres -XAtc "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")
if [[ -z "$exists" ]]; then
    if (( create )); then
        log "creating database $db"
        createdb "$db"
    else
        echo "database $db does not exist (use --create-db)" >&2
        exit 1
    fi
fi

log "restoring $dump into $db"
# Not `pg_restore --clean`: it drops each partition's inherited primary key on its own, which
# PostgreSQL refuses ("cannot drop inherited constraint"). Instead, in one transaction: drop the
# database's own schemas, recreate an empty public one, replay the dump. Any error rolls all back.
drop_sql=$(psql --dbname "$db" -XAtc "SELECT string_agg(format('DROP SCHEMA IF EXISTS %I CASCADE;', nspname), ' ')
    FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'")
{
    printf '%s\nCREATE SCHEMA public;\nGRANT USAGE ON SCHEMA public TO PUBLIC;\n' "$drop_sql"
    pg_restore --no-owner --file - "$dump"
} | psql --dbname "$db" -X -q --single-transaction -v ON_ERROR_STOP=1 >/dev/null
log "database restored"

if [[ -f "$archive" ]]; then
    log "restoring files from $archive into $files_dir"
    mkdir -p "$files_dir"
    tar --extract --file "$archive" --directory "$files_dir"
fi

# Every live stored file the restored database names, checked against its SHA-256.
has_files=$(psql --dbname "$db" -XAtc "SELECT to_regclass('stored_files') IS NOT NULL")
if [[ $has_files == t ]]; then
    manifest=$(mktemp)
    trap 'rm -f "$manifest"' EXIT
    psql --dbname "$db" -XAt -F '  ' -c \
        "SELECT sha256, path FROM stored_files WHERE deleted_at IS NULL ORDER BY id" > "$manifest"
    count=$(grep -c . "$manifest" || true)
    if (( count > 0 )) && [[ ! -d "$files_dir" ]]; then
        echo "$count of $count stored files are missing or differ in $files_dir: there is no such folder" >&2
        exit 4
    fi
    if (( count > 0 )); then
        if ! failed=$(cd "$files_dir" && sha256sum --check --quiet "$manifest" 2>&1); then
            echo "$(printf '%s\n' "$failed" | grep -c ': FAILED') of $count stored files are missing or differ in $files_dir:" >&2
            printf '%s\n' "$failed" | head -20 >&2
            exit 4
        fi
    fi
    log "$count stored files checked against their SHA-256 in $files_dir"
fi
log "done"
