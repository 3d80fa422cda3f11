#!/usr/bin/env bash
# The services and programs the test suite runs for real: redis-server, Chromium (browser tests), wrk (bench),
# xmlsec1 (pysaml2's default subprocess backend: the baseline the SAML benchmark compares against).
# Installs Debian's packages when missing and we are root; otherwise says what to install and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v xmlsec1 >/dev/null 2>&1 || missing+=(xmlsec1)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing: ${missing[*]}. Install them (e.g. 'sudo apt-get install ${missing[*]}') and run make test again." >&2
exit 1
