#!/usr/bin/env bash
# Layering check (docs/ARCHITECTURE.md): the core never pulls in a UI, a web framework, an async
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
echo "layering: sd-core is free of UI, web, async and cloud crates"
