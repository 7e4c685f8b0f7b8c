#!/usr/bin/env bash
# Test hosts on one machine: each host is a network namespace with its own address and a UTS
# namespace with its own hostname, all joined by a bridge that lives in a namespace of its own, so
# nothing is added to the machine's own network. tests/distributed/hosts.py drives this.
#
#   netns_hosts.sh up RUN N            make hosts h1..hN (10.77.0.1..N/24) for run RUN
#   netns_hosts.sh exec RUN HOST CMD   run CMD on HOST (a shell command line, as ssh takes it):
#                                      Open MPI's rsh agent
#   netns_hosts.sh kill RUN HOST       kill every process on HOST
#   netns_hosts.sh down RUN            kill the run's processes, remove its hosts
#   netns_hosts.sh clean               remove the hosts of runs whose owner process has ended
#
# RUN is distml-<pid of the owner>-<k>: `clean` removes the runs of owners that have ended (a crashed
# test run), so concurrent runs on one machine leave each other alone. Needs root and iproute2.
set -euo pipefail

STATE=/run/distml-hosts   # per run: one UTS namespace file per host

netns() { echo "$1-$2"; }  # RUN HOST -> network namespace name

up() {
    local run=$1 n=$2 dir=$STATE/$1 i host
    mkdir -p "$dir"
    ip netns add "$(netns "$run" sw)"
    ip -n "$(netns "$run" sw)" link add br0 type bridge
    ip -n "$(netns "$run" sw)" link set br0 up
    for ((i = 1; i <= n; i++)); do
        host=h$i
        ip netns add "$(netns "$run" $host)"
        ip -n "$(netns "$run" sw)" link add $host type veth peer name eth0 netns "$(netns "$run" $host)"
        ip -n "$(netns "$run" sw)" link set $host master br0 up
        ip -n "$(netns "$run" $host)" addr add 10.77.0.$i/24 dev eth0
        ip -n "$(netns "$run" $host)" link set eth0 up
        ip -n "$(netns "$run" $host)" link set lo up
        touch "$dir/$host.uts"
        unshare --uts="$dir/$host.uts" hostname $host
    done
}

enter() {  # RUN HOST CMD...: exec CMD in HOST's namespaces
    local run=$1 host=$2
    shift 2
    exec nsenter --net="/run/netns/$(netns "$run" "$host")" --uts="$STATE/$run/$host.uts" -- "$@"
}

kill_host() {  # RUN HOST: kill every process in HOST's network namespace
    local ns pids
    ns=$(netns "$1" "$2")
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
}

down() {
    local run=$1 ns host f
    for ns in $(ip netns list | awk '{print $1}' | grep "^$run-" || true); do
        kill_host "$run" "${ns#"$run"-}"
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$run-" || true); do
        ip netns delete "$ns"
    done
    for f in "$STATE/$run"/*.uts; do
        [[ -e $f ]] || continue
        umount "$f" 2>/dev/null || true
        rm -f "$f"
    done
    rmdir "$STATE/$run" 2>/dev/null || true
}

clean() {
    local run pid
    for run in $( (ip netns list | awk '{print $1}'; ls "$STATE" 2>/dev/null) |
                  sed -n 's/^\(distml-[0-9]*-[0-9]*\).*/\1/p' | sort -u); do
        pid=${run#distml-}
        pid=${pid%-*}
        kill -0 "$pid" 2>/dev/null || down "$run"
    done
}

case ${1:-} in
    up) up "$2" "$3" ;;
    exec) # As ssh: this process stays here, off the host, and says 255 when the host's side
          # is killed (as when the machine dies) instead of being killed with it.
          run=$2 host=$3; shift 3
          status=0
          (enter "$run" "$host" sh -c "$*") || status=$?
          ((status <= 128)) || status=255
          exit $status ;;
    kill) kill_host "$2" "$3" ;;
    down) down "$2" ;;
    clean) clean ;;
    *) echo "usage: $0 up RUN N | exec RUN HOST CMD | kill RUN HOST | down RUN | clean" >&2; exit 2 ;;
esac
