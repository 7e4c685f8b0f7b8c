#!/usr/bin/env bash
# A two-node SLURM cluster on this one machine, to try the slurm/ scripts and to test them.
#
#   slurm/local_cluster.sh start     # munged, slurmctld and two slurmd (nodes n1, n2); waits until idle
#   export SLURM_CONF=...            # the line `start` and `status` print; sbatch/srun/sinfo need it
#   sbatch -N 2 --ntasks-per-node=1 --gpus-per-node=0 --cpus-per-task=1 slurm/multi_node.sbatch my_script.py
#   slurm/local_cluster.sh status
#   slurm/local_cluster.sh stop      # stops the daemons and deletes the cluster's directory
#
# Needs root and Debian's slurmd, slurmctld, slurm-client and munge (.ci/slurm_setup.sh installs them).
# Everything (config, munge key, state, logs) lives in $DISTML_SLURM_DIR (default /tmp/distml-slurm);
# nothing under /etc is touched. Ports: $DISTML_SLURM_PORT (default 17000) for slurmctld, +1 and +2
# for the two slurmd. Each node declares $DISTML_SLURM_CPUS CPUs (default: this machine's count,
# at least 2), so `--ntasks-per-node=2` fits even on a small machine, and no GPUs. The sbatch scripts
# ask for 4 GPUs and 8 CPUs per task (SET lines for a GPU cluster): a job that asks for more than
# these nodes have pends for ever (squeue's reason: Resources), so override both as above.
#
# On separate hosts: with DISTML_SLURM_NODE_EXEC (a command that runs `HOST COMMAND-LINE` on HOST, as
# ssh does) and DISTML_SLURM_NODE_HOSTS ("host1=address1 host2=address2"), n1 and n2 run on those
# hosts, slurmctld on the first; tests/distributed/test_slurm.py uses test hosts in network
# namespaces (tests/distributed/netns_hosts.sh) so. sbatch and the other clients must then run on
# one of the hosts too.
set -euo pipefail

DIR=${DISTML_SLURM_DIR:-/tmp/distml-slurm}
PORT=${DISTML_SLURM_PORT:-17000}
CPUS=${DISTML_SLURM_CPUS:-$(( $(nproc) > 2 ? $(nproc) : 2 ))}
CONF=$DIR/slurm.conf
NODE_EXEC=${DISTML_SLURM_NODE_EXEC:-}
read -r -a NODE_HOSTS <<<"${DISTML_SLURM_NODE_HOSTS:-}"
[[ -z $NODE_EXEC || ${#NODE_HOSTS[@]} == 2 ]] ||
    { echo "local_cluster.sh: DISTML_SLURM_NODE_HOSTS must name 2 hosts (host=address), got '${DISTML_SLURM_NODE_HOSTS:-}'" >&2; exit 1; }

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

alive() {  # alive PID: running, and no zombie (in a container nobody may reap it)
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

pid_alive() {  # pid_alive FILE: the process named in FILE is running
    [[ -s $1 ]] && alive "$(cat "$1")"
}

running() {
    pid_alive "$DIR/munged.pid" && pid_alive "$DIR/slurmctld.pid" &&
        pid_alive "$DIR/slurmd-n1.pid" && pid_alive "$DIR/slurmd-n2.pid"
}

on_node() {  # on_node I COMMAND-LINE: run it on node n<I+1>'s host (here without DISTML_SLURM_NODE_EXEC)
    if [[ -n $NODE_EXEC ]]; then
        $NODE_EXEC "${NODE_HOSTS[$1]%%=*}" "$2"
    else
        bash -c "$2"
    fi
}

write_config() {
    local host names=() addrs=() i
    host=$(hostname -s)
    for i in 0 1; do
        if [[ -n $NODE_EXEC ]]; then
            names[i]=${NODE_HOSTS[i]%%=*} addrs[i]=${NODE_HOSTS[i]#*=}
        else
            names[i]=$host addrs[i]=127.0.0.1
        fi
    done
    mkdir -p "$DIR/state" "$DIR/munge" "$DIR"/{spool,tmp}/{n1,n2}
    chmod 700 "$DIR/munge"
    cat >"$CONF" <<EOF
ClusterName=distml
SlurmctldHost=${names[0]}(${addrs[0]})
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
# Per node, or the two nodes' srun --mpi=pmix steps collide in the same directory.
TmpFS=$DIR/tmp/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
SlurmdParameters=config_overrides
# What works inside a container: no cgroups, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
NodeName=n1 NodeHostname=${names[0]} NodeAddr=${addrs[0]} Port=$((PORT + 1)) CPUs=$CPUS State=UNKNOWN
NodeName=n2 NodeHostname=${names[1]} NodeAddr=${addrs[1]} Port=$((PORT + 2)) CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    if running; then
        echo "local_cluster.sh: already running in $DIR"
        echo "export SLURM_CONF=$CONF"
        return
    fi
    stop >/dev/null  # whatever half-started cluster is left
    for exe in munged mungekey slurmctld slurmd sinfo; do
        command -v "$exe" >/dev/null || die "$exe not found; install slurmd slurmctld slurm-client munge (.ci/slurm_setup.sh)"
    done
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons run as root), got uid $(id -u)"
    write_config
    mungekey --create --keyfile="$DIR/munge/munge.key" --force
    munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed"
    export SLURM_CONF=$CONF
    on_node 0 "slurmctld -f '$CONF'"
    on_node 0 "slurmd -f '$CONF' -N n1"
    on_node 1 "slurmd -f '$CONF' -N n2"
    for _ in $(seq 150); do  # up to 30 s until both nodes are idle
        if [[ $(on_node 0 "sinfo -h -N -o '%T'" 2>/dev/null | grep -c '^idle') == 2 ]]; then
            echo "local_cluster.sh: nodes n1 n2 idle ($DIR)"
            echo "export SLURM_CONF=$CONF"
            return
        fi
        sleep 0.2
    done
    on_node 0 "sinfo -N" >&2 || true
    tail -n 5 "$DIR"/*.log >&2 || true
    die "nodes did not become idle within 30 s; logs are in $DIR"
}

stop() {
    local f pid
    for f in "$DIR"/slurmd-n1.pid "$DIR"/slurmd-n2.pid "$DIR"/slurmctld.pid "$DIR"/munged.pid; do
        pid_alive "$f" || continue
        pid=$(cat "$f")  # the daemons delete their pid file before they are gone
        kill "$pid"
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        ! alive "$pid" || kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$DIR"
    echo "local_cluster.sh: stopped"
}

status() {
    if running; then
        echo "local_cluster.sh: running in $DIR"
        echo "export SLURM_CONF=$CONF"
        on_node 0 "SLURM_CONF='$CONF' sinfo -N"
    else
        echo "local_cluster.sh: not running"
        return 3
    fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status (expected one of these, got '${1:-}')" ;;
esac
