#!/usr/bin/env bash
# Layering check (docs/ARCHITECTURE.md): the core (and the offline CLI) never pull in a UI, a web framework, an async
# runtime, an HTTP client or a cloud SDK. Fails listing the offending crates.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(egui|eframe|axum|hyper|tokio|reqwest|aws-sdk-[a-z0-9]+|aws-config)$'
check() {
  local package=$1
  local found
  found=$(cargo tree --locked -p "$package" -e normal,build --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u | grep -E "$forbidden" || true)
  if [ -n "$found" ]; then
    echo "layering: $package must not depend on: $found" >&2
    exit 1
  fi
}
check sd-core
# The offline binary never builds the server's web and AWS stacks (they live in
# scale-diffusion-server).
check scale-diffusion
echo "layering: sd-core and the scale-diffusion CLI are free of UI, web, async and cloud crates"
