#!/usr/bin/env bash
# Set up everything tek-harness needs, in this checkout: Debian's socat (pseudo-terminal pairs for the
# Modbus RTU tests), chromium (renders the reports in the tests), gcc and libmodbus-dev (the tests compile a
# libmodbus reference server), redis-server (the fleet tests' broker) when apt-get can install them, a
# virtual environment .venv with the harness and its test tools, and the pinned Allure command line
# (npm, into .allure/) for the single-file Allure report. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/include/modbus/modbus.h ] || missing+=(libmodbus-dev)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the fleet's broker in its tests (issue 17)
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || missing+=(postgresql)  # a real PostgreSQL under the golden AMR server in its tests (issue 15)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: install ${missing[*]} (Debian: sudo apt-get install ${missing[*]}) for the serial, report, reference-peer and fleet tests" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

if command -v npm >/dev/null 2>&1; then
  bash .ci/install-allure.sh
else
  echo "setup: no npm (Node.js >= 20): certificates are made without the Allure HTML report" >&2
fi
echo "setup: done — now: . .venv/bin/activate && harness certify"
