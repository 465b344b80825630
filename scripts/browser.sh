#!/usr/bin/env bash
# Install the browser the browser tests drive: Chromium from Debian's packages
# (/usr/bin/chromium), if it is not there yet. Nothing downloads a browser at run time.
# SIPANTAU_CHROMIUM may name another Chromium binary; when it exists nothing is installed.
set -euo pipefail

CHROMIUM=${SIPANTAU_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi

install() {
  # Without the recommends (a printer dialog, a notification daemon, a desktop); with one
  # font family so that pages and screenshots have text.
  echo "browser: installing Chromium (Debian package chromium) for the browser tests" >&2
  "$@" apt-get update
  "$@" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends chromium fonts-liberation
}

if [ "$(id -u)" -eq 0 ]; then
  install
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  install sudo
else
  cat >&2 <<MSG
browser: $CHROMIUM is missing and this user cannot install packages.
The browser tests need Chromium from Debian's packages. As root run:
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
(or point SIPANTAU_CHROMIUM at a Chromium binary).
MSG
  exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "browser: the chromium package is installed but $CHROMIUM is not there" >&2
  exit 1
fi
