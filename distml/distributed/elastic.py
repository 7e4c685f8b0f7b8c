"""Surviving preemption: stop at a step boundary every rank agrees on, checkpoint, and be requeued.

    from distml.distributed import checkpoint as dcp
    from distml.distributed.elastic import PreemptionHandler

    preempted = PreemptionHandler()            # catches SIGUSR1 (and the sbatch scripts' flag file)
    for step, (x, y) in enumerate(loader, start):
        train_step(x, y)
        if preempted.should_stop():            # collective: every rank gets the same answer
            dcp.save(state, checkpoint_id="ckpt")
            preempted.exit()                   # exit code 75: slurm/*.sbatch requeue the job

The slurm/ scripts ask SLURM for `--signal=B:USR1@90` (the batch shell gets USR1 90 s before the time
limit, or from `scancel --signal=USR1 --batch`) and pass it on by creating the file named by
`DISTML_PREEMPT_FILE`, which the ranks on every node see; a rank started by srun that gets SIGUSR1
itself counts too. When the ranks exit with REQUEUE_EXIT_CODE the script runs `scontrol requeue`,
the job goes back to the queue under the same id and, started again, finds the checkpoint.
"""
import os
import signal
import sys

import numpy as np

import distml
import distml.distributed as dist

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure; run me again
PREEMPT_FILE_ENV = "DISTML_PREEMPT_FILE"


class PreemptionHandler:
    """Notices a preemption warning on any rank and makes every rank agree on when to stop.

    `signum`: the signal to catch (SIGUSR1, as the sbatch scripts send). `every`: check across ranks
    every this many calls of `should_stop` (each check is one all_reduce of one number).
    `flag_file`: a path whose existence means "stop" (default: $DISTML_PREEMPT_FILE, if set).
    """

    def __init__(self, signum=signal.SIGUSR1, every=1, flag_file=None):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.signum = signum
        self.every = every
        self.flag_file = flag_file if flag_file is not None else os.environ.get(PREEMPT_FILE_ENV)
        self.signalled = False
        self._calls = 0
        self._previous = signal.signal(signum, self._catch)

    def _catch(self, signum, frame):
        self.signalled = True

    def _local(self):
        return self.signalled or (self.flag_file is not None and os.path.exists(self.flag_file))

    def should_stop(self):
        """True on every rank once any rank was warned, at the same call on all ranks; call it once
        per step on every rank."""
        self._calls += 1
        if self._calls % self.every:
            return False
        if not dist.is_initialized():
            return self._local()
        flag = distml.from_numpy(np.array([float(self._local())], dtype=np.float32))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.numpy()[0])

    def close(self):
        """Put back the signal's previous handler."""
        signal.signal(self.signum, self._previous)

    def exit(self, code=REQUEUE_EXIT_CODE):
        """End this rank after the checkpoint: wait for every rank, then exit with `code` (75: requeue me)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        sys.stdout.flush()
        sys.exit(code)
