#!/usr/bin/env bash
# Debian packages the tests use: PostGIS for PostgreSQL 15 and headless Chromium.
# Installs them with apt when running as root; otherwise says what is missing (the
# PostGIS and browser tests then skip loudly on a laptop, and fail under CI=true).
set -euo pipefail
missing=()
[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing+=(postgresql-15-postgis-3)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The map tests serve Leaflet and its plugins to Chromium from npm copies (tests/browser).
install_browser_assets() {
  local dir
  dir="$(cd "$(dirname "$0")" && pwd)/browser"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
     [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "WARNING: npm not found: the browser map tests need 'npm ci' in $dir;" \
         "they will be skipped (and fail under CI=true)" >&2
    return 0
  fi
  echo "installing the map tests' browser assets: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) ||
    echo "WARNING: npm ci failed in $dir: the browser map tests will be skipped (and fail under CI=true)" >&2
}
if [ ${#missing[@]} -eq 0 ]; then
  install_browser_assets
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "WARNING: missing Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]});" \
       "the tests that need them will be skipped" >&2
fi
install_browser_assets
