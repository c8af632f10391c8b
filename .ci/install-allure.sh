#!/usr/bin/env bash
# Install the pinned Allure 3 command line (npm package `allure`: Node >= 20, no Java) into the
# project-local prefix .allure/ (gitignored), where harness.reporting.allure_html.find_allure() looks
# for it: .allure/node_modules/.bin/allure. Run it, don't source it: `bash .ci/install-allure.sh`.
#
# Why a project-local prefix and not `npm install -g`: nothing outside the checkout changes, no PATH
# edit is needed, and it cannot collide with a global Allure 2 (npm `allure-commandline`, which also
# installs a `.bin/allure`). Idempotent: no npm call when the pinned version is already there.
# Quiet: one line on success, npm's own errors otherwise. Bounded: npm is killed after 300 s.
#
# Keep ALLURE_NPM_VERSION equal to ALLURE_VERSION in harness/reporting/allure_html.py.
set -euo pipefail

ALLURE_NPM_VERSION="3.18.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo/.allure"
bin="$prefix/node_modules/.bin/allure"
pkg="$prefix/node_modules/allure/package.json"

installed_version() {
  [ -f "$pkg" ] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-allure: node/npm not found (Allure 3 needs Node.js >= 20)" >&2
  exit 1
fi

if [ ! -x "$bin" ] || [ "$(installed_version)" != "$ALLURE_NPM_VERSION" ]; then
  mkdir -p "$prefix"
  # A package.json of its own keeps npm from attaching the install to some enclosing project.
  [ -f "$prefix/package.json" ] || echo '{"private": true, "name": "tek-harness-allure"}' >"$prefix/package.json"
  if ! timeout 300 npm install --prefix "$prefix" --save-exact --no-audit --no-fund --no-update-notifier \
      --loglevel=error "allure@$ALLURE_NPM_VERSION" >/dev/null; then
    echo "install-allure: npm install allure@$ALLURE_NPM_VERSION failed or took over 300 s" >&2
    exit 1
  fi
  if [ ! -x "$bin" ] || [ "$(installed_version)" != "$ALLURE_NPM_VERSION" ]; then
    echo "install-allure: allure@$ALLURE_NPM_VERSION did not install into $prefix" >&2
    exit 1
  fi
fi
echo "allure $("$bin" --version 2>/dev/null || echo "$ALLURE_NPM_VERSION"): $bin"
