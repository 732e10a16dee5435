#!/usr/bin/env bash
# The main job on the embedded default: local folders + SQLite, no cloud account.
#   ./run.sh [RAW]   RAW defaults to the real sessions ($SD_SHARED_DIR/real-sessions, or
#                    ../shared/real-sessions), or else a synthetic bundle generated here.
# Every session goes through ALIGN -> SPLICE -> CLEAN; passing segments land in out/clean,
# failed ones in out/review, and the payout ledger is out/ledger.sqlite. Run it again: the
# ledger's totals stay the same (a session's record is replaced, never added twice).
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
# Only what this job runs: the CLI and the synthetic-bundle generator (the server and the desktop
# app build with `scripts/local-stack.sh` and `cargo run -p scale-diffusion-review`).
cargo build --release --locked -p scale-diffusion -p sd-fixtures

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
    # The generator's answer key is not a part of any bundle.
    rm -f "$raw/$wallet"/*_truth.json
  fi
fi

./target/release/scale-diffusion process "$raw" --out out/clean --review out/review --ledger out/ledger.sqlite
