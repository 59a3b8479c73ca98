#!/usr/bin/env bash
# Restore a dump made by pg_backup.sh into a database, replacing what is there.
#
#   pg_restore.sh [--yes] [--create-db] DUMP_FILE [DATABASE]
#
# DATABASE defaults to PGDATABASE or "mes"; the connection uses libpq's variables (PGHOST,
# PGPORT, PGUSER, ~/.pgpass). Stop the kernel first (systemctl stop mes-kernel, or
# docker compose stop kernel): the restore drops and recreates every object of the dump.
#   --create-db  create DATABASE first if it does not exist (restoring onto a new server)
#   --yes        do not ask for confirmation
# The dump's .sha256 file, when present, is checked first. Everything is restored in one
# transaction: on any error nothing changes.
set -euo pipefail

yes=0 create=0
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --yes) yes=1 ;;
        --create-db) create=1 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 [--yes] [--create-db] DUMP_FILE [DATABASE]" >&2
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

if (( ! yes )); then
    read -r -p "Replace the contents of database '$db' with $dump? [y/N] " answer
    [[ $answer == [yY]* ]] || { echo "not restored"; exit 1; }
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
pg_restore --dbname "$db" --clean --if-exists --no-owner --single-transaction --exit-on-error "$dump"
log "done"
