#!/usr/bin/env bash
# The server stack on this machine, for trying it: the S3+SQS emulator (moto) on 127.0.0.1,
# `scale-diffusion-server setup`, N workers sharing one ledger, the upload API on 127.0.0.1:8080
# and the capture demo (client/demo/) on 127.0.0.1:8090. Prints the endpoints and how to upload a
# bundle, then stays in the foreground; Ctrl-C stops everything.
#
#   scripts/local-stack.sh [WORKERS] [--postgres]
#       default 2 workers; port $SD_STACK_PORT (default 4566). The ledger is a SQLite file, or
#       with --postgres a PostgreSQL cluster on 127.0.0.1 (port $SD_STACK_PG_PORT, default 5433),
#       as workers on several hosts share it.
#
# State: out/stack/ (worker logs, the ledger out/stack/ledger.sqlite or the cluster in
# out/stack/postgres, moto's log). The emulator keeps buckets and queues in memory, and the
# cluster is a throwaway one: both are gone when the stack stops.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=2
postgres=""
for arg in "$@"; do
  case "$arg" in
    --postgres) postgres=1 ;;
    *[!0-9]* | "") echo "usage: scripts/local-stack.sh [WORKERS] [--postgres]" >&2; exit 2 ;;
    *) workers="$arg" ;;
  esac
done
port="${SD_STACK_PORT:-4566}"
dir=out/stack
mkdir -p "$dir"
ledger="$dir/ledger.sqlite"
pg_dir=""

scripts/install-deps.sh
scripts/moto.sh install
cargo build --release --locked --bins -p scale-diffusion-server -p scale-diffusion
scripts/client.sh build

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
server=./target/release/scale-diffusion-server

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the stack"
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  scripts/moto.sh stop "$dir" || true
  if [ -n "$pg_dir" ]; then
    scripts/postgres.sh stop "$pg_dir" || true
    rm -rf "$pg_dir"
  fi
}
trap stop INT TERM EXIT

scripts/moto.sh start "$port" "$dir" >/dev/null
if [ -n "$postgres" ]; then
  # Right under /tmp: as root, the cluster runs as the postgres user, which must reach it.
  pg_dir=$(mktemp -d /tmp/sd-stack-postgres-XXXXXX)
  pg_port="${SD_STACK_PG_PORT:-5433}"
  scripts/postgres.sh start "$pg_port" "$pg_dir"
  psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c 'CREATE DATABASE ledger'
  ledger="postgres://postgres@127.0.0.1:$pg_port/ledger"
fi
demo=http://127.0.0.1:8090
"$server" setup --cors-origin "$demo"
for n in $(seq 1 "$workers"); do
  "$server" worker --name "worker-$n" --ledger "$ledger" --work-dir "$dir/work-$n" \
    2>"$dir/worker-$n.log" &
  pids+=("$!")
done

"$server" api --listen 127.0.0.1:8080 --ledger "$ledger" --cors-origin "$demo" \
  2>"$dir/api.log" &
pids+=("$!")
python3 -m http.server 8090 --bind 127.0.0.1 --directory client >"$dir/demo.log" 2>&1 &
pids+=("$!")

wallet=Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR
cat <<INFO

The stack is up:
  S3 + SQS emulator  $AWS_ENDPOINT_URL   (raw bucket sd-raw, clean bucket sd-clean, queue sd-raw-events)
  workers            $workers, logs in $dir/worker-N.log
  ledger             $ledger
  upload API         http://127.0.0.1:8080 (log $dir/api.log)
  capture demo       $demo/demo/?lag=300   (drive with WASD; Start records 60 s, then uploads
                     through the API: a session from the browser, end to end)

Upload a bundle's five parts (video first, meta last), e.g. the real sessions:
  for f in ../shared/real-sessions/$wallet/*; do
    curl -sf -X PUT -H 'authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00' \\
      --upload-file "\$f" "$AWS_ENDPOINT_URL/sd-raw/$wallet/\$(basename "\$f")"
  done
(the emulator checks no signature; it refuses only anonymous overwrites, hence the header.)

Then look:
  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    $server status --ledger $ledger
  curl -s "$AWS_ENDPOINT_URL/sd-clean?list-type=2"          (the clean bucket's keys)
  ./target/release/scale-diffusion payouts list --ledger $ledger

Review what the workers published, in the review app (a verdict queues the session for a worker):
  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    cargo run --release -p scale-diffusion-review -- --from-bucket --ledger $ledger

Ctrl-C stops the workers (SIGTERM: each finishes its session), the emulator (and PostgreSQL).
INFO
wait
