#!/usr/bin/env bash
# Debian packages the tests use: PostGIS for PostgreSQL 15 and headless Chromium.
# Installs them with apt when running as root; otherwise says what is missing (the
# PostGIS and browser tests then skip loudly on a laptop, and fail under CI=true).
set -euo pipefail
missing=()
[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing+=(postgresql-15-postgis-3)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
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
