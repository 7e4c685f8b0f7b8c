#!/usr/bin/env bash
# Train on this machine: one rank per GPU, or one per CPU core without GPUs (NPROC to choose).
#
#   launch/local.sh examples/mnist.py --epochs 5
#   NPROC=2 launch/local.sh -m mypkg.train --lr 0.1
#
# Everything after the script name goes to distmlrun: its options (distmlrun --help), then your
# program and its arguments.
set -euo pipefail
exec distmlrun ${NPROC:+-n "$NPROC"} "$@"
