#!/usr/bin/env bash
# The whole test suite: installs what it needs, then format, lints, layering, and every test.
# Tests that need ../shared/real-sessions print SKIPPED when it is absent; set
# SD_REQUIRE_REAL_SESSIONS=1 to make absence a failure (CI does). It also installs Debian's Chromium
# for the test that renders the session report and the capture client's end-to-end test
# (SD_REQUIRE_BROWSER=1 makes its absence a failure), PostgreSQL for the ledger's tests on both
# stores (SD_REQUIRE_POSTGRES=1 likewise), moto for the server's tests, the Python readers of the
# training export (lerobot, webdataset: SD_REQUIRE_READERS=1), and the capture module's
# npm packages (client/, built and unit-tested here before the Rust tests).
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh --browser
# moto, the S3+SQS emulator the server's tests start on 127.0.0.1 (SD_REQUIRE_EMULATOR=1 makes
# its absence a failure instead of a SKIPPED line).
scripts/moto.sh install
# The readers the export is read back with (lerobot, webdataset; SD_REQUIRE_READERS=1 makes their
# absence a failure instead of a SKIPPED line): about 3 minutes and 8 GB the first time.
scripts/readers.sh install
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/check-deps.sh
# The browser capture module: type-check, build, unit tests.
scripts/client.sh test
cargo test --workspace --locked
