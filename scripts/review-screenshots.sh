#!/usr/bin/env bash
# The review app for real, under Xvfb: the real sessions (when ../shared has them) and a
# synthetic session with every defect, processed into a scratch layout, then the app driven by
# xdotool and photographed. Writes PNGs to the folder given (default target/review-screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/review-screenshots}"
shared="${SD_SHARED_DIR:-../shared}"
wallet=Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR
display=":${SD_XVFB_DISPLAY:-97}"

bash scripts/install-deps.sh >/dev/null
command -v xdotool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xdotool >/dev/null
cargo build --release -q -p scale-diffusion -p sd-fixtures -p scale-diffusion-review

rm -rf "$out"
mkdir -p "$out/raw/$wallet"
./target/release/sd-fixtures bundle --out "$out/raw/$wallet" --preset defects --wallet "$wallet" >/dev/null
rm -f "$out/raw/$wallet"/*_truth.json
layout=(--out "$out/clean" --review "$out/review" --ledger "$out/ledger.sqlite" --quiet)
./target/release/scale-diffusion process "$out/raw" "${layout[@]}" >/dev/null
if [ -d "$shared/real-sessions" ]; then
  ./target/release/scale-diffusion process "$shared/real-sessions" "${layout[@]}" >/dev/null
else
  echo "$shared/real-sessions not found: the synthetic session only"
fi

Xvfb "$display" -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true' EXIT
sleep 1
DISPLAY="$display" ./target/release/scale-diffusion-review --out "$out/clean" --review "$out/review" \
  --ledger "$out/ledger.sqlite" --reviewer screenshots >"$out/app.log" 2>&1 &
app=$!
sleep 4
export DISPLAY="$display"
window=$(xdotool search --sync --name "Scale Diffusion review" | head -1)
# Xvfb runs no window manager: give the window the keyboard by hand.
xdotool windowfocus "$window" 2>/dev/null
shot() { sleep 1.5; import -window root "$out/$1.png"; echo "$out/$1.png"; }
key() { xdotool key --window "$window" "$@" 2>/dev/null; sleep 0.3; }

shot queue
key n
shot segment-first
for _ in 1 2 3 4 5 6 7 8 9 10; do key Right; done
shot segment-stepped
key n; key n; key n
key shift+Right
shot segment-later
# The real sessions' segments come first (earlier session ids), then the synthetic one's: three
# N above went past the real ones to its segment_001; seven more reach its segment_008 (frozen),
# and J jumps to where the frozen stretch begins.
for _ in 1 2 3 4 5 6 7; do key n; done
key j
shot segment-flagged
key h
shot help
key h
for _ in 1 2 3 4 5 6 7; do key n; done
shot segment-last-in-queue
kill "$app" 2>/dev/null || true
wait "$app" 2>/dev/null || true

# One bundle folder, offline: the progress while it processes, then its segments.
DISPLAY="$display" ./target/release/scale-diffusion-review "$out/raw/$wallet" --reviewer screenshots \
  >"$out/inspect.log" 2>&1 &
app=$!
window=$(xdotool search --sync --name "Scale Diffusion review" | head -1)
xdotool windowfocus "$window" 2>/dev/null
sleep 0.5
import -window root "$out/inspect-progress.png"; echo "$out/inspect-progress.png"
sleep 12
shot inspect-done
