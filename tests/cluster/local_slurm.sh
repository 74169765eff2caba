#!/usr/bin/env bash
# A real one-node SLURM on this machine, from nothing and back: Debian's slurmctld,
# slurmd and munge (installed with apt-get when missing), four fake GPUs (GRES backed by
# /dev/null, /dev/zero, /dev/full and /dev/urandom), no accounting. Needs root.
#
#   tests/cluster/local_slurm.sh up       # install if needed, start, wait until idle
#   tests/cluster/local_slurm.sh status   # the node and the queue
#   tests/cluster/local_slurm.sh down     # cancel the jobs, stop the daemons, remove state
#
# Everything lives in $LOCAL_SLURM_DIR (default /tmp/resnet_flax_slurm): slurm.conf,
# gres.conf, munge's key and socket, the daemons' state, pid files and logs. Clients find
# the cluster through SLURM_CONF, which `up` prints as an export line:
#
#   eval "$(tests/cluster/local_slurm.sh up)"; srun -n 2 hostname
#
# The daemons listen on SLURM's fixed ports (6817, 6818): one such cluster at a time.
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/tmp/resnet_flax_slurm}
CONF=$DIR/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
FAKE_GPUS=(/dev/null /dev/zero /dev/full /dev/urandom)
NODE=$(hostname -s)

say() { echo "local_slurm: $*" >&2; }
# A failed `up` stops what it started and removes its files.
die() { say "$*"; [ -z "${STARTING:-}" ] || { STARTING=; down >/dev/null 2>&1; }; exit 1; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "no apt-get to install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing or stale (a fresh container): update, then retry.
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1 \
        || { apt-get update -q >>"$DIR/apt.log" 2>&1 \
             && apt-get install -y -q --no-install-recommends "${missing[@]}" \
                >>"$DIR/apt.log" 2>&1; } \
        || die "apt-get install ${missing[*]} failed (see $DIR/apt.log): $(tail -n 3 "$DIR/apt.log")"
}

write_conf() {
    # The node as slurmd sees it (CPUs, sockets, memory), named by its short hostname.
    local node
    node=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$NODE/")
    cat >"$CONF" <<EOF
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
GresTypes=gpu
KillWait=30
$node NodeAddr=127.0.0.1 Gres=gpu:${#FAKE_GPUS[@]} State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$DIR/gres.conf"
    for dev in "${FAKE_GPUS[@]}"; do
        [ -c "$dev" ] || die "$dev is not a character device (a fake GPU needs one)"
        echo "NodeName=$NODE Name=gpu File=$dev" >>"$DIR/gres.conf"
    done
}

start_munge() {
    local m=$DIR/munge
    mkdir -p "$m"
    [ -f "$m/munge.key" ] || mungekey --create --keyfile="$m/munge.key" 2>/dev/null \
        || create-munge-key -f "$m/munge.key" 2>/dev/null \
        || dd if=/dev/urandom of="$m/munge.key" bs=1 count=1024 2>/dev/null
    chown -R munge:munge "$m"
    chmod 711 "$m"  # munged: others may reach the socket, not list or write
    chmod 400 "$m/munge.key"
    runuser -u munge -- munged --socket="$m/munge.socket" --key-file="$m/munge.key" \
        --log-file="$m/munged.log" --pid-file="$m/munged.pid" --seed-file="$m/munged.seed" \
        || die "munged did not start: $(tail -n 3 "$m/munged.log" 2>/dev/null)"
    munge -S "$m/munge.socket" -n | unmunge -S "$m/munge.socket" >/dev/null \
        || die "munge does not answer on $m/munge.socket"
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
        [ "$state" = idle ] && return 0
        sleep 0.5
    done
    die "the node is '${state:-not answering}' after 30 s, not idle; logs: $(tail -n 5 \
        "$DIR/slurmctld.log" "$DIR/slurmd.log" 2>/dev/null)"
}

up() {
    [ "$(id -u)" = 0 ] || die "needs root (installs packages, starts daemons as root)"
    export SLURM_CONF=$CONF
    if [ -f "$CONF" ] && sinfo -h -o %t >/dev/null 2>&1; then
        say "already up ($CONF)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    mkdir -p "$DIR"
    STARTING=1
    install_packages
    rm -rf "$DIR/ctld" "$DIR/slurmd"
    mkdir -p "$DIR/ctld" "$DIR/slurmd"
    write_conf
    start_munge
    # -c: a clean start, no jobs from an earlier cluster's state.
    slurmctld -c -f "$CONF" || die "slurmctld did not start: $(tail -n 5 "$DIR/slurmctld.log")"
    slurmd -f "$CONF" || die "slurmd did not start: $(tail -n 5 "$DIR/slurmd.log")"
    wait_idle
    STARTING=
    say "up: node $NODE idle, ${#FAKE_GPUS[@]} fake GPUs ($CONF)"
    echo "export SLURM_CONF=$CONF"
}

stop_pid() {  # The daemon whose pid file this is, TERM then KILL.
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    export SLURM_CONF=$CONF
    if [ -f "$CONF" ] && squeue -h >/dev/null 2>&1; then
        scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 40); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munge/munged.pid"
    rm -rf "$DIR"
    say "down"
}

status() {
    export SLURM_CONF=$CONF
    [ -f "$CONF" ] || die "not up (no $CONF)"
    sinfo -N -o "%N %t %c %G" && squeue
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
