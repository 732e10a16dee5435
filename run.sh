#!/usr/bin/env bash
# The main job on the embedded default: local folders, no cloud account.
#   ./run.sh [RAW]   RAW defaults to the real sessions ($SD_SHARED_DIR/real-sessions, or
#                    ../shared/real-sessions), or else a synthetic bundle generated here.
# Until `scale-diffusion process` lands, the job is `inspect`: parts, video health, the clock
# join (ALIGN) and every segment's verdict (SPLICE/CLEAN), read-only.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
cargo build --release --locked --bins

wallet=Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR
shared="${SD_SHARED_DIR:-../shared}"
raw="${1:-}"
if [ -z "$raw" ]; then
  if [ -d "$shared/real-sessions" ]; then
    raw="$shared/real-sessions"
  else
    raw=out/synthetic-raw
    echo "$shared/real-sessions not found: generating a synthetic session with one span of each defect in $raw"
    rm -rf "$raw"
    ./target/release/sd-fixtures bundle --out "$raw/$wallet" --preset defects --wallet "$wallet" >/dev/null
  fi
fi

./target/release/scale-diffusion inspect "$raw"
