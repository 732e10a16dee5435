#!/usr/bin/env bash
# Installs and runs moto in server mode, the S3+SQS emulator that the server's integration tests
# and the local stack talk to on 127.0.0.1 (../shared/INFRA.md: it sends real S3 event
# notifications to SQS, with redrive, visibility and long polls; it checks no signature at all).
#
#   scripts/moto.sh install          venv at $SD_MOTO_VENV (default
#                                    ~/.cache/scale-diffusion/moto-venv); quick when already there
#   scripts/moto.sh check            exit 0 when the pinned moto is installed, 1 when not
#   scripts/moto.sh start PORT DIR   moto_server on 127.0.0.1:PORT in the background, log in
#                                    DIR/moto.log, pid in DIR/moto.pid; waits until it answers
#                                    (at most $SD_MOTO_START_TIMEOUT s, default 30), then prints
#                                    the endpoint URL on stdout (and nothing else there)
#   scripts/moto.sh stop DIR         stops the server started with that DIR
#
# State lives in the server's memory only: a stopped server forgets every bucket, queue and
# message. To take the emulator away for a while and keep its state, SIGSTOP and SIGCONT its pid.
# Clients need a region and any credentials (AWS_REGION=us-east-1, AWS_ACCESS_KEY_ID=test,
# AWS_SECRET_ACCESS_KEY=test); path-style S3 addressing; queue ARNs use account 123456789012.
set -euo pipefail

venv="${SD_MOTO_VENV:-$HOME/.cache/scale-diffusion/moto-venv}"

# moto itself, with the extras it declares for S3 and SQS, plus the two web packages that server
# mode imports (`moto[server]` would also pull in cfn-lint, docker, aws-xray-sdk and more for
# other services: 60 packages and 317 MB in 35 s, against 27 and 140 MB in 14 s). Pinned: moto,
# and what it is most sensitive to (botocore's service models, the Werkzeug/Flask request
# handling). The rest (cryptography, PyYAML, requests...) floats, so that wheels for whatever
# python3 the machine has are found.
requirements=(
  "moto[s3,sqs]==5.2.5"
  "boto3==1.44.8"
  "botocore==1.44.8"
  "flask==3.1.3"
  "flask-cors==6.0.5"
  "werkzeug==3.1.9"
)
# The venv's creation, install and stamp.
# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"

usage() {
  echo "usage: $0 install | check | start PORT DIR | stop DIR" >&2
  exit 2
}

# Whether the pinned moto is installed (exit 0) or not (exit 1); installs nothing.
installed() {
  venv_installed "$venv" bin/moto_server "${requirements[@]}"
}

install() {
  venv_install "$venv" bin/moto_server moto "${requirements[@]}"
}

# True when the pid in $1 is a live moto_server (not a recycled pid).
is_moto() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server
}

# True when something answers HTTP on 127.0.0.1:$1 within a second.
answers() {
  "$venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=1).read()
except urllib.error.HTTPError:
    pass  # an HTTP answer all the same
except Exception:
    sys.exit(1)
PY
}

start() {
  local port=$1 dir=$2
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
    || { echo "bad port: $port" >&2; exit 2; }
  [ -x "$venv/bin/moto_server" ] || { echo "moto is not installed: run $0 install" >&2; exit 1; }
  mkdir -p "$dir"
  local pidfile="$dir/moto.pid" log="$dir/moto.log"
  if [ -f "$pidfile" ] && is_moto "$(cat "$pidfile")"; then
    echo "moto already runs from $dir (pid $(cat "$pidfile")): run $0 stop $dir first" >&2
    exit 1
  fi
  # Something else on the port would answer the readiness check in our server's stead.
  if answers "$port"; then
    echo "127.0.0.1:$port is already taken" >&2
    exit 1
  fi
  # -H 127.0.0.1: loopback only. No environment variable is needed for path-style S3 or for
  # the notifications; unset the ones that change how moto reads S3 URLs, in case the caller has.
  env -u MOTO_S3_CUSTOM_ENDPOINTS -u S3_IGNORE_SUBDOMAIN_BUCKETNAME -u MOTO_PORT \
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  local deadline=$((SECONDS + ${SD_MOTO_START_TIMEOUT:-30}))
  local failure=""
  until answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      failure="moto exited before answering on 127.0.0.1:$port"
    elif [ "$SECONDS" -ge "$deadline" ]; then
      failure="moto did not answer on 127.0.0.1:$port within ${SD_MOTO_START_TIMEOUT:-30} s"
    fi
    if [ -n "$failure" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -f "$pidfile"
      echo "$failure; the end of $log:" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "http://127.0.0.1:$port"
}

stop() {
  local dir=$1
  local pidfile="$dir/moto.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if is_moto "$pid"; then
    # SIGCONT too, in case a test left it stopped: SIGTERM waits for that.
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 50); do
      is_moto "$pid" || break
      sleep 0.1
    done
    if is_moto "$pid"; then
      echo "moto (pid $pid) ignored SIGTERM for 5 s: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) [ $# -eq 1 ] || usage; install ;;
  check) [ $# -eq 1 ] || usage; installed ;;
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
