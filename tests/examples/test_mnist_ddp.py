"""examples/mnist.py unchanged under `distmlrun -n 2`: it trains, and resuming from rank 0's
checkpoint ends with the same parameters as an uninterrupted data-parallel run."""
import os
import subprocess
import sys

import numpy as np

import distml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "mnist.py")


def distmlrun(*args, progress=False):
    command = [sys.executable, "-m", "distml.distributed.run", "-n", "2", DEMO,
               *([] if progress else ["--no-progress"]), *args]
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done if progress else done.stdout


def test_demo_trains_on_two_ranks_and_resumes_identically(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    out = distmlrun("--epochs", "3", "--checkpoint-dir", str(straight))
    assert "2 ranks" in out and out.count("epoch 3/3:") == 1  # only rank 0 reports
    distmlrun("--epochs", "2", "--checkpoint-dir", str(resumed))
    out = distmlrun("--epochs", "3", "--resume", "--checkpoint-dir", str(resumed))
    assert "resumed from" in out and "after epoch 2" in out
    a = distml.load(str(straight / "checkpoint.pt"))["model"]
    b = distml.load(str(resumed / "checkpoint.pt"))["model"]
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


def test_demo_reaches_the_single_process_accuracy_band():
    out = distmlrun()
    accuracy = float(out.strip().splitlines()[-1].split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 97.0, out


def test_progress_bars_into_a_pipe_are_rank_0s_and_rate_limited():
    """Into a pipe the bar draws at most every few seconds, on rank 0 only: 4 short epochs of 45
    steps each leave at most a few lines, not one per step and rank."""
    done = distmlrun("--epochs", "4", progress=True)
    assert done.stdout.count("epoch 4/4:") == 1
    bar_lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if "it/s" in line]
    assert len(bar_lines) <= 4 * 3, done.stderr
