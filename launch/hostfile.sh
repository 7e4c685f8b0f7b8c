#!/usr/bin/env bash
# Train over several machines listed in a hostfile (Open MPI's format), one line per machine:
#
#   node1 slots=4      # slots: the ranks to run there, one per GPU
#   node2 slots=4
#
#   HOSTFILE=hosts launch/hostfile.sh examples/mnist.py --epochs 5
#   HOSTFILE=hosts NPROC=6 launch/hostfile.sh train.py    # fewer ranks than slots
#
# Run it on one of the machines. It needs passwordless ssh from there to every other one, and the
# same paths everywhere: the Python environment (distmlrun starts ranks with this Python's path),
# your code and your data. PATH, PYTHONPATH, OMP_NUM_THREADS and CUDA_VISIBLE_DEVICES travel along.
# Everything after the script name goes to distmlrun: its options, then your program and arguments.
set -euo pipefail
: "${HOSTFILE:?expected HOSTFILE=<your hostfile>, got none}"
exec distmlrun --hostfile "$HOSTFILE" ${NPROC:+-n "$NPROC"} "$@"
