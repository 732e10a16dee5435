#!/usr/bin/env bash
# The main job on the embedded default: local folders, no cloud account.
#   ./run.sh [RAW]   RAW defaults to ../shared/real-sessions, or a generated synthetic bundle.
# Until the pipeline lands (ALIGN, SPLICE/CLEAN, process) the job is `scale-diffusion inspect`.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
cargo build --release --locked --bins

raw="${1:-}"
if [ -z "$raw" ]; then
  if [ -d ../shared/real-sessions ]; then
    raw=../shared/real-sessions
  else
    raw=out/synthetic-raw
    echo "../shared/real-sessions not found: generating a synthetic bundle in $raw"
    ./target/release/sd-fixtures bundle --out "$raw/Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR" --preset messy
  fi
fi

./target/release/scale-diffusion inspect "$raw"
