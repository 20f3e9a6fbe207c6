#!/usr/bin/env bash
# Make sure the test PostgreSQL at $CAREPATH_TEST_POSTGRES_URL is up and its database exists
# (used by `make test`). Silent when all is well. A stopped local Debian cluster is started;
# on a Debian-like machine where we are root, PostgreSQL is installed first if missing.
# Anything else: one line on stderr, exit 1.
set -euo pipefail

readonly WAIT_SECONDS=60
url=${CAREPATH_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/carepath_test}

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
urldecode() { printf '%b' "${1//%/\\x}"; }

# postgresql[+driver]://[user[:password]@]host[:port][/dbname][?query]
rest=${url#*://}
authority=${rest%%[/?]*}
path=${rest#"$authority"}
path=${path%%\?*}
db=$(urldecode "${path#/}")
userinfo=
hostport=$authority
if [[ $authority == *@* ]]; then
    userinfo=${authority%@*}
    hostport=${authority##*@}
fi
user=$(urldecode "${userinfo%%:*}")
if [[ $userinfo == *:* ]]; then
    PGPASSWORD=$(urldecode "${userinfo#*:}")
    export PGPASSWORD
fi
if [[ $hostport == \[* ]]; then # [IPv6]:port
    host=${hostport#\[}
    host=${host%%]*}
    port=${hostport#*]}
else
    host=${hostport%%:*}
    port=${hostport#"$host"}
fi
port=${port#:}
host=${host:-127.0.0.1}
port=${port:-5432}
user=${user:-postgres}
db=${db:-$user}
[[ $port =~ ^[0-9]+$ ]] || die "cannot read a port from CAREPATH_TEST_POSTGRES_URL ($url)"
where="$host:$port"
[[ $host == *:* ]] && where="[$host]:$port"
export PGCONNECT_TIMEOUT=5

# Accepting connections? pg_isready when installed, else a plain TCP connect.
ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$host" -p "$port" -t 3 </dev/null
    else
        tcp_open "$host" "$port"
    fi
}

is_local() {
    case $host in
        127.* | localhost | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

missing="no PostgreSQL at $where; install it (apt-get install postgresql) or set CAREPATH_TEST_POSTGRES_URL"

if ! ready; then
    is_local || die "no PostgreSQL reachable at $where (from CAREPATH_TEST_POSTGRES_URL); start it there or fix the URL"

    installed=
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        if can_apt_install; then
            apt_install postgresql
            command -v pg_ctlcluster >/dev/null 2>&1 || die "$missing"
            installed=1
        else
            die "$missing"
        fi
    fi

    # The Debian cluster listening on our port (pg_lsclusters -h: ver name port status ...).
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print $1, $2, $4; exit }')
    if [[ -z $cluster ]]; then
        # None on that port. With no cluster at all (e.g. create_main_cluster=false), make one.
        [[ -z $(pg_lsclusters -h 2>/dev/null) ]] ||
            die "no PostgreSQL cluster on port $port (see pg_lsclusters); fix CAREPATH_TEST_POSTGRES_URL"
        [[ $(id -u) -eq 0 ]] || die "$missing"
        version=$(
            for bin in /usr/lib/postgresql/*/bin/postgres; do
                if [[ -x $bin ]]; then
                    bin=${bin#/usr/lib/postgresql/}
                    echo "${bin%%/*}"
                fi
            done | sort -V | tail -1
        )
        [[ -n $version ]] || die "$missing"
        say "creating PostgreSQL cluster $version/main on port $port"
        pg_createcluster -p "$port" "$version" main </dev/null >/dev/null 2>&1 ||
            die "pg_createcluster $version main failed"
        installed=1 # configure its pg_hba.conf like a fresh install
        cluster="$version main down"
    fi
    read -r version name status <<<"$cluster"

    if [[ -n $installed ]]; then
        # Fresh install: Debian allows only password logins over TCP, but the test URL has
        # no password. Trust loopback connections, as a development/CI database may.
        hba=/etc/postgresql/$version/$name/pg_hba.conf
        if [[ -f $hba ]] && ! grep -q 'carepath' "$hba"; then
            {
                echo "# carepath (infra/ensure-postgres.sh): passwordless loopback for dev/CI"
                echo "host all all 127.0.0.1/32 trust"
                echo "host all all ::1/128 trust"
                cat "$hba"
            } >"$hba.carepath" && cat "$hba.carepath" >"$hba" && rm -f "$hba.carepath"
        fi
    fi

    log=${TMPDIR:-/tmp}/carepath-postgres-start.log
    if [[ $status == online* ]]; then
        # Running but not answering yet (starting up), or just installed: reload pg_hba.
        [[ -z $installed ]] || pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload \
            </dev/null >"$log" 2>&1 || true
    else
        say "starting PostgreSQL $version/$name"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start </dev/null >"$log" 2>&1 ||
            die "pg_ctlcluster $version $name start failed; see $log"
    fi

    deadline=$((SECONDS + WAIT_SECONDS))
    until ready; do
        ((SECONDS < deadline)) || die "PostgreSQL did not come up at $where within ${WAIT_SECONDS}s; see $log"
        sleep 1
    done
    say "PostgreSQL is up at $where"
fi

# The database named in the URL.
command -v psql >/dev/null 2>&1 || die "psql not found; install postgresql-client"
pg=(-X -q -w -h "$host" -p "$port" -U "$user")
exists() {
    local out
    out=$(psql "${pg[@]}" -d postgres -v ON_ERROR_STOP=1 -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'" </dev/null 2>&1) ||
        die "cannot query PostgreSQL at $where as $user: $(head -1 <<<"$out")"
    [[ $out == 1 ]]
}
if ! exists; then
    if ! out=$(createdb -w -h "$host" -p "$port" -U "$user" "$db" </dev/null 2>&1); then
        exists || die "createdb $db failed: $(head -1 <<<"$out")" # lost a race is fine
    else
        say "created database $db"
    fi
fi
