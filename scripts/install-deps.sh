#!/usr/bin/env bash
# Installs what building and testing need on Debian (FFmpeg's development packages, clang for
# bindgen, the ffmpeg CLI for comparisons, cmake and nasm to build libjpeg-turbo 3 for the
# turbojpeg crate, SQLite and PostgreSQL for the ledger, Mesa and Xvfb for the review app), only
# when missing. Safe to run again and again.
set -euo pipefail

packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  ffmpeg
  cmake nasm
  libsqlite3-dev
  # PostgreSQL, the ledger's store for several hosts: its tests start a throwaway cluster on
  # 127.0.0.1 (scripts/postgres.sh) and talk to it with psql (its dependencies bring both);
  # openssl makes the certificates of its TLS test.
  postgresql openssl
  # The review app: wgpu renders through Mesa (llvmpipe without a GPU, as in the snapshot
  # tests), winit opens an X11 window; Xvfb and xwd for the screenshot script.
  libegl1 libegl-mesa0 libgl1-mesa-dri mesa-vulkan-drivers libxkbcommon-x11-0 libxcursor1 libxi6
  libxrandr2 xvfb x11-apps imagemagick
)
# The capture module (client/) builds and tests with Node.js and npm; a node already installed
# (from any source) is kept.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

# `--browser`: also Debian's Chromium, for the test that renders the session report.
if [ "${1:-}" = "--browser" ]; then
  packages+=(chromium)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust first (rustup, stable toolchain)" >&2
  exit 1
fi
