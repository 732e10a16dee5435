# Sourced by the scripts that keep pinned Python packages in a venv of their own (moto.sh,
# readers.sh): create the venv when missing or broken, install the requirements, and stamp it, so
# that a venv whose stamp matches is left alone.
#
#   venv_installed VENV PROBE REQUIREMENT...   exit 0 when VENV holds exactly these (PROBE: a
#                                              file the install must have made)
#   venv_install VENV PROBE LABEL REQUIREMENT... install them when not already there

# Debian's python3 leaves ensurepip (which `python3 -m venv` needs) to the python3-venv package:
# installed the way scripts/install-deps.sh installs packages, only when missing.
venv_ensure_module() {
  if python3 -c 'import ensurepip, venv' 2>/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || {
    echo "python3 cannot create a venv (no ensurepip) and apt-get is missing" >&2
    exit 1
  }
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "need root (or sudo) to install: python3-venv" >&2
      exit 1
    }
    sudo="sudo"
  fi
  echo "installing Debian packages: python3-venv" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    python3-venv >/dev/null
}

venv_installed() {
  local venv=$1 probe=$2
  shift 2
  local wanted
  wanted=$(printf '%s\n' "$@")
  [ -e "$venv/$probe" ] && [ -f "$venv/.scale-diffusion-stamp" ] \
    && [ "$(cat "$venv/.scale-diffusion-stamp")" = "$wanted" ] \
    && "$venv/bin/python" -c '' 2>/dev/null
}

venv_install() {
  local venv=$1 probe=$2 label=$3
  shift 3
  if venv_installed "$venv" "$probe" "$@"; then
    return
  fi
  local wanted stamp="$venv/.scale-diffusion-stamp"
  wanted=$(printf '%s\n' "$@")
  command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
  venv_ensure_module
  # A venv that is there but broken (its python gone or upgraded) is made again; only a folder
  # that is a venv is ever removed.
  if [ -e "$venv" ] && ! "$venv/bin/python" -c '' 2>/dev/null; then
    if [ -f "$venv/pyvenv.cfg" ]; then
      rm -rf "$venv"
    else
      echo "$venv exists and is not a venv: remove it or choose another folder" >&2
      exit 1
    fi
  fi
  if [ ! -e "$venv" ]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
  fi
  echo "installing $label into $venv" >&2
  rm -f "$stamp"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$venv/bin/python" -m pip install --quiet --prefer-binary "$@" >&2
  printf '%s\n' "$wanted" >"$stamp"
}
