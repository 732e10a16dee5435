#!/usr/bin/env bash
# The whole test suite: installs what it needs, then format, lints, layering, and every test.
# Tests that need ../shared/real-sessions print SKIPPED when it is absent; set
# SD_REQUIRE_REAL_SESSIONS=1 to make absence a failure (CI does). It also installs Debian's Chromium
# for the test that renders the session report (SD_REQUIRE_BROWSER=1 makes its absence a failure),
# and moto for the server's tests.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh --browser
# moto, the S3+SQS emulator the server's tests start on 127.0.0.1 (SD_REQUIRE_EMULATOR=1 makes
# its absence a failure instead of a SKIPPED line).
scripts/moto.sh install
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/check-deps.sh
cargo test --workspace --locked
