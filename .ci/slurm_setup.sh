#!/usr/bin/env bash
# Install what tests/distributed/test_slurm.py needs to run a real two-node SLURM cluster on this
# machine (slurm/local_cluster.sh): Debian's slurmd, slurmctld, slurm-client and munge, and
# libpmix-dev, whose unversioned libpmix.so SLURM's pmix plugin loads for `srun --mpi=pmix`.
# Does nothing when they are there already. Needs root (or sudo) and the Debian package mirrors.
set -euo pipefail

packages=(slurmd slurmctld slurm-client munge libpmix-dev)
installed=$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c "ok installed" || true)
if [[ $installed != "${#packages[@]}" ]]; then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
slurmd -V
