#!/usr/bin/env bash
# Layering check (docs/ARCHITECTURE.md): the core never pulls in a UI, a web framework, an async
# runtime, an HTTP client, a cloud SDK or an exporter; the offline CLI none of these but the one
# blocking HTTP client (ureq) that `sd-telemetry` exports traces with, off unless configured, and
# the runtime the PostgreSQL client runs on.
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
# The training export is a library over the clean layout's files, like the core.
check sd-export "$web|ureq|rustls|opentelemetry.*|tracing-opentelemetry|rusqlite|postgres"
# The offline binary never builds the server's web and AWS stacks (they live in
# scale-diffusion-server and sd-bucket). It does build tokio, only as the PostgreSQL client's
# (sd-ledger's `postgres`, for a ledger shared by several hosts): every Rust PostgreSQL client runs
# on tokio, and so does its TLS (tokio-postgres-rustls, tokio-rustls); sd-ledger itself only asks
# whether it is called from a runtime's thread.
check scale-diffusion "${web/tokio|/}"
# (cargo tree's own failure stops the script: set -e, outside the pipe.)
tokio_tree=$(cargo tree --locked -p scale-diffusion -e normal,build -i tokio --depth 1 --prefix none --format '{p}')
tokio_users=$(echo "$tokio_tree" | awk 'NR > 1 {print $1}' | sort -u \
  | grep -v -E '^(tokio-postgres|tokio-util|postgres|postgres-protocol|tokio-postgres-rustls|tokio-rustls|sd-ledger)$' || true)
if [ -n "$tokio_users" ]; then
  echo "layering: in scale-diffusion, tokio is the PostgreSQL client's only; also used by: $tokio_users" >&2
  exit 1
fi
echo "layering: sd-core and sd-export are free of UI, web, async, network and cloud crates; the scale-diffusion CLI of all but the trace exporter's ureq and the PostgreSQL client's tokio"
