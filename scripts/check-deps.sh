#!/usr/bin/env bash
# Layering check (docs/ARCHITECTURE.md): the core never pulls in a UI, a web framework, an async
# runtime, an HTTP client, a cloud SDK or an exporter; the offline CLI none of these but the one
# blocking HTTP client (ureq) that `sd-telemetry` exports traces with, off unless configured.
# Fails listing the offending crates.
set -euo pipefail
cd "$(dirname "$0")/.."

web='egui|eframe|axum|hyper|tokio|reqwest|aws-sdk-[a-z0-9]+|aws-config'
check() {
  local package=$1 forbidden=$2
  local found
  found=$(cargo tree --locked -p "$package" -e normal,build --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u | grep -E "^($forbidden)$" || true)
  if [ -n "$found" ]; then
    echo "layering: $package must not depend on: $found" >&2
    exit 1
  fi
}
check sd-core "$web|ureq|rustls|opentelemetry.*|tracing-opentelemetry"
# The offline binary never builds the server's web and AWS stacks (they live in
# scale-diffusion-server and sd-bucket).
check scale-diffusion "$web"
echo "layering: sd-core is free of UI, web, async, network and cloud crates; the scale-diffusion CLI of all but the trace exporter's ureq"
