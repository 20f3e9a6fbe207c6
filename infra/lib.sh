# Helpers shared by the infra/ensure-*.sh scripts (sourced, not run).
# shellcheck shell=bash

say() { echo "carepath: $*" >&2; }
die() {
    echo "carepath: $*" >&2
    exit 1
}

# Does host $1 accept TCP connections on port $2 (within 2 s)?
# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner bash
tcp_open() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null &
        local pid=$! killer rc=0
        (sleep 2 && kill "$pid") >/dev/null 2>&1 &
        killer=$!
        wait "$pid" || rc=$?
        kill "$killer" 2>/dev/null || true
        return "$rc"
    fi
}

# Run a command quietly, killed after $1 seconds where `timeout` exists.
run_limited() {
    local secs=$1
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout "$secs" "$@" </dev/null >/dev/null 2>&1
    else
        "$@" </dev/null >/dev/null 2>&1
    fi
}

# Can we install Debian packages here (root with apt-get)?
can_apt_install() { [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; }

# Install Debian package $1 quietly; dies pointing at the log when it fails.
apt_install() {
    local package=$1 log=${TMPDIR:-/tmp}/carepath-apt-$1.log
    say "installing $package (apt-get)"
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; } </dev/null >"$log" 2>&1; then
        die "apt-get install $package failed; see $log"
    fi
}
