#!/usr/bin/env bash
# The Python readers the export's tests read a dataset back with (tests/python/check_export.py):
# the `lerobot` package itself (it brings pyarrow, pandas, PyAV, Hugging Face `datasets` and
# torch), and `webdataset`.
#
#   scripts/readers.sh install   venv at $SD_READERS_VENV (default
#                                ~/.cache/scale-diffusion/readers-venv); quick when already there
#   scripts/readers.sh check     exit 0 when the pinned readers are installed, 1 when not
#   scripts/readers.sh python    print the venv's python (exit 1 when not installed)
#
# Measured on this project's 2-core machines: the first install takes about 3 minutes and 8 GB
# (torch's wheel from PyPI carries CUDA's libraries; PyPI has no CPU-only one), pip's cache off.
set -euo pipefail

venv="${SD_READERS_VENV:-$HOME/.cache/scale-diffusion/readers-venv}"
# Pinned: the two readers the tests name. What they bring floats, so that wheels for whatever
# python3 the machine has are found.
requirements=(
  "lerobot==0.4.4"
  "webdataset==1.0.2"
)

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"

case "${1:-}" in
  install)
    PIP_NO_CACHE_DIR=1 venv_install "$venv" bin/python "lerobot and webdataset" "${requirements[@]}"
    ;;
  check) venv_installed "$venv" bin/python "${requirements[@]}" ;;
  python)
    venv_installed "$venv" bin/python "${requirements[@]}" || exit 1
    echo "$venv/bin/python"
    ;;
  *)
    echo "usage: $0 install | check | python" >&2
    exit 2
    ;;
esac
