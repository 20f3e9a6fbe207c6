#!/usr/bin/env bash
# Make sure the system Chromium the browser tests drive is installed (used by `make test`).
# Silent when it is there. On a Debian-like machine where we are root, Debian's chromium is
# installed (Playwright never downloads a browser here). Anything else: one line on stderr,
# exit 1. $CAREPATH_CHROMIUM names another browser binary.
set -euo pipefail

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

browser=${CAREPATH_CHROMIUM:-/usr/bin/chromium}
[[ -x $browser ]] && exit 0

if [[ $browser == /usr/bin/chromium ]] && can_apt_install; then
    apt_install chromium # ~480 MB
    [[ -x $browser ]] && exit 0
fi
die "no Chromium at $browser for the browser tests: install it (apt-get install chromium) or set CAREPATH_CHROMIUM"
