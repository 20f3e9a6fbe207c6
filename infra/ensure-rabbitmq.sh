#!/usr/bin/env bash
# Make sure a RabbitMQ broker is reachable at $AMQP_URI (used by `make run`, `make test`,
# `make bench`). Silent when it already is. A missing local broker is started, and on a
# Debian-like machine where we are root, installed first. Anything else: one line, exit 1.
set -euo pipefail

readonly WAIT_SECONDS=90
uri=${AMQP_URI:-amqp://127.0.0.1:5672/%2F}

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# amqp[s]://user:pass@host:port/vhost?query -> host, port
scheme=${uri%%://*}
rest=${uri#*://}
authority=${rest%%[/?]*}
hostport=${authority##*@}
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
if [[ -z $port ]]; then
    if [[ $scheme == amqps ]]; then port=5671; else port=5672; fi
fi
[[ $port =~ ^[0-9]+$ ]] || die "cannot read a port from AMQP_URI ($uri)"
where="$host:$port"
[[ $host == *:* ]] && where="[$host]:$port"

# TCP connect with a short timeout (bash /dev/tcp; `timeout` is missing on stock macOS).
# Find a command on PATH or in the sbin directories a non-root PATH may lack.
find_cmd() {
    local dir
    if command -v "$1" 2>/dev/null; then return 0; fi
    for dir in /usr/sbin /usr/local/sbin /sbin; do
        if [[ -x $dir/$1 ]]; then
            echo "$dir/$1"
            return 0
        fi
    done
    return 1
}

# The management HTTP API: services/streams provisions vendor subscriptions through it (one way
# everywhere: docker-compose's broker enables it by infra/rabbitmq/enabled_plugins). On a local
# broker whose API port is closed, enable the plugin: an online change, no restart.
management_port=${BROKER_MANAGEMENT_PORT:-15672}
management() {
    case $host in
        127.* | localhost | ::1) ;;
        *) return 0 ;;
    esac
    tcp_open "$host" "$management_port" && return 0
    local plugins
    plugins=$(find_cmd rabbitmq-plugins) ||
        die "the management API is off at $host:$management_port and rabbitmq-plugins is missing"
    say "enabling RabbitMQ's management API (rabbitmq-plugins enable rabbitmq_management)"
    run_limited 120 "$plugins" enable rabbitmq_management ||
        die "rabbitmq-plugins enable rabbitmq_management failed (run it as root or rabbitmq)"
}

tcp_open "$host" "$port" && { management; exit 0; }

case $host in
    127.* | localhost | ::1) ;;
    *) die "no RabbitMQ reachable at $where (from AMQP_URI); start it there or fix AMQP_URI" ;;
esac

missing="no RabbitMQ at $where; install it (apt-get install rabbitmq-server) or set AMQP_URI"

if ! server=$(find_cmd rabbitmq-server); then
    if can_apt_install; then
        apt_install rabbitmq-server
        server=$(find_cmd rabbitmq-server) || die "$missing"
        # The package's maintainer scripts may already have started it.
        tcp_open "$host" "$port" && { management; exit 0; }
    else
        die "$missing"
    fi
fi

ctl=$(find_cmd rabbitmqctl || true)
log=${TMPDIR:-/tmp}/carepath-rabbitmq-start.log
late="RabbitMQ did not come up at $where within ${WAIT_SECONDS}s; see $log and /var/log/rabbitmq/"
if [[ -n $ctl ]] && run_limited 15 "$ctl" -q status; then
    # A node is running (perhaps still booting) but not listening here yet: just wait.
    late="a RabbitMQ node is running but nothing listens at $where; check AMQP_URI and its listeners"
else
    say "starting RabbitMQ ($server -detached)"
    # Redirect everything: the detached node must not hold make's (or CI's) output pipes open.
    "$server" -detached </dev/null >"$log" 2>&1 || die "rabbitmq-server -detached failed; see $log"
fi

deadline=$((SECONDS + WAIT_SECONDS))
while ((SECONDS < deadline)); do
    if tcp_open "$host" "$port"; then
        left=$((deadline - SECONDS))
        ((left > 0)) || left=1
        if [[ -z $ctl ]] || run_limited $((left + 5)) "$ctl" -q await_startup --timeout "$left"; then
            say "RabbitMQ is up at $where"
            management
            exit 0
        fi
    fi
    sleep 1
done
die "$late"
