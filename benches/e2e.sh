#!/usr/bin/env bash
# The end-to-end import benchmark and the schema limit, in the same run (../shared/bench/README.md):
#
#   python3 ../shared/bench/gen_catalog.py cat.json
#   python3 ../shared/bench/gen_sessions.py 1000000 s1m.csv
#   benches/e2e.sh cat.json s1m.csv [postgres://postgres@127.0.0.1:5432/test] [sqlite|postgres|both]
#
# For each backend: a new database (SQLite: a file in a temporary directory; PostgreSQL: a database
# `kintell_e2e_bench` created next to the one the URL names, dropped first if it exists), the `e2e` example
# (the catalogue in one process, then the timed import in another, under /usr/bin/time -v), then the schema limit of the rows the import wrote:
#
# - PostgreSQL: `\copy (select * from T) to 'T.csv' csv` for every table the import wrote, `TRUNCATE` them, then
#   time loading the dumps back with `\copy T from 'T.csv' csv`, all indexes in place.
# - SQLite: copy the database file, empty the tables the import wrote (and VACUUM, so the file is as new), then time
#   `INSERT INTO main.T SELECT * FROM copy.T` from the attached copy, in one transaction, all indexes in place, with
#   the import's own pragmas (WAL, synchronous NORMAL, foreign keys on, wal_autocheckpoint 16384, journal_size_limit
#   64 MiB, the default page cache).
#
# The tables a sessions import writes: ingestion_batches, ingestion_row_errors, kintell_sessions,
# activity_associations, program_enrollments (users only with --create-missing-users, which the bench does not
# need: the generated people are all in the catalogue). Prints import / schema limit for each backend.
set -euo pipefail
cd "$(dirname "$0")/.."

CAT=$(realpath "${1:?usage: e2e.sh CATALOG.json SESSIONS.csv [POSTGRES_URL] [sqlite|postgres|both]}")
CSV=$(realpath "${2:?usage: e2e.sh CATALOG.json SESSIONS.csv [POSTGRES_URL] [sqlite|postgres|both]}")
PG_URL="${3:-postgres://postgres@127.0.0.1:5432/test}"
WHICH="${4:-both}"
TABLES="ingestion_batches kintell_sessions program_enrollments activity_associations ingestion_row_errors"

cargo build --release -q -p kintell-ingest-benches --example e2e
BIN="$(pwd)/target/release/examples/e2e"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# Runs the import, prints its output and the peak RSS that /usr/bin/time saw; sets IMPORT_S.
run_import() {
    local url="$1"
    "$BIN" catalog "$CAT" "$url"
    /usr/bin/time -v "$BIN" import "$CSV" "$url" >"$WORK/e2e.out" 2>"$WORK/e2e.err" || {
        cat "$WORK/e2e.err" >&2
        exit 1
    }
    cat "$WORK/e2e.out"
    IMPORT_S=$(sed -n 's/^e2e .* import_s=\([0-9.]*\) .*/\1/p' "$WORK/e2e.out")
    echo "  peak RSS (/usr/bin/time): $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/e2e.err") KB"
}

ratio() {
    awk -v i="$1" -v l="$2" 'BEGIN { printf "%.2f", i / l }'
}

if [ "$WHICH" = both ] || [ "$WHICH" = postgres ]; then
    DB=kintell_e2e_bench
    BASE="${PG_URL%/*}"
    psql -X -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    URL="$BASE/$DB"
    echo "== PostgreSQL"
    run_import "$URL"
    present=""
    for t in $TABLES; do
        n=$(psql -X -At "$URL" -c "select count(*) from $t")
        if [ "$n" -gt 0 ]; then
            present="$present $t"
            psql -X -q "$URL" -c "\\copy (select * from $t) to '$WORK/$t.csv' csv"
            echo "  $t: $n rows"
        fi
    done
    psql -X -q "$URL" -c "TRUNCATE $(echo $present | tr ' ' ',') CASCADE"
    : >"$WORK/load.sql"
    for t in $present; do
        echo "\\copy $t from '$WORK/$t.csv' csv" >>"$WORK/load.sql"
    done
    start=$(now)
    psql -X -q -v ON_ERROR_STOP=1 "$URL" -f "$WORK/load.sql" >/dev/null
    LIMIT_S=$(seconds "$start" "$(now)")
    echo "  schema limit (\\copy back): $LIMIT_S s"
    echo "postgres: import ${IMPORT_S} s / schema limit ${LIMIT_S} s = $(ratio "$IMPORT_S" "$LIMIT_S")"
    psql -X -q "$PG_URL" -c "DROP DATABASE $DB"
fi

if [ "$WHICH" = both ] || [ "$WHICH" = sqlite ]; then
    DB="$WORK/bench.db"
    echo "== SQLite"
    run_import "sqlite://$DB?mode=rwc"
    sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
    cp "$DB" "$WORK/copy.db"
    present=""
    for t in $TABLES; do
        n=$(sqlite3 "$DB" "select count(*) from $t")
        if [ "$n" -gt 0 ]; then
            present="$present $t"
            echo "  $t: $n rows"
        fi
    done
    {
        echo "PRAGMA foreign_keys = ON;"
        for t in $(echo $present | tr ' ' '\n' | tac); do echo "DELETE FROM $t;"; done
        echo "VACUUM;"
    } | sqlite3 "$DB"
    {
        echo "PRAGMA journal_mode = WAL;"
        echo "PRAGMA synchronous = NORMAL;"
        echo "PRAGMA foreign_keys = ON;"
        echo "PRAGMA wal_autocheckpoint = 16384;"
        echo "PRAGMA journal_size_limit = 67108864;"
        echo "ATTACH '$WORK/copy.db' AS copy;"
        echo "BEGIN;"
        for t in $present; do echo "INSERT INTO main.$t SELECT * FROM copy.$t;"; done
        echo "COMMIT;"
    } >"$WORK/load.sql"
    start=$(now)
    sqlite3 "$DB" <"$WORK/load.sql" >/dev/null
    LIMIT_S=$(seconds "$start" "$(now)")
    echo "  schema limit (INSERT … SELECT from the attached copy): $LIMIT_S s"
    echo "sqlite: import ${IMPORT_S} s / schema limit ${LIMIT_S} s = $(ratio "$IMPORT_S" "$LIMIT_S")"
fi
