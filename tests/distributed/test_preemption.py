"""Preemption on the suite's real two-node SLURM (test_slurm's cluster): slurm/multi_node.sbatch runs
examples/preemptible.py; USR1 to the batch shell mid-epoch (from scancel, or SLURM's timed
--signal) makes every rank checkpoint and exit 75,
the script requeues the job (`scontrol requeue`), the job runs again under the same id, resumes from
the checkpoint and ends with the parameters of a run never stopped."""
import glob
import json
import os
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_slurm import CPU_ONLY, ENDED, REPO, cluster  # noqa: E402,F401  (cluster: the module's fixture)

EXAMPLE = str(REPO / "examples" / "preemptible.py")
ARGS = ["--samples", "48", "--global-batch", "6", "--epochs", "2"]  # 16 steps
TIMEOUT = 400  # for each thing a test waits for


def job_field(cluster, job_id, field):
    shown = subprocess.run(cluster.client(["scontrol", "-o", "show", "job", job_id]), env=cluster.env,
                           capture_output=True, text=True, timeout=60).stdout
    return shown.split(f"{field}=")[1].split()[0] if f"{field}=" in shown else "?"


def wait_for(predicate, what, job_id, cluster, out):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        ended = job_field(cluster, job_id, "JobState") in ENDED
        if ended and predicate():  # it happened just before the job ended
            return
        if ended or time.monotonic() > deadline:
            subprocess.run(cluster.client(["scancel", job_id]), env=cluster.env, timeout=60)
            log = cluster.dir / "cluster" / "slurmctld.log"
            pytest.fail(f"job {job_id}: {what} did not happen {'before it ended' if ended else f'in {TIMEOUT} s'}; "
                        f"state {job_field(cluster, job_id, 'JobState')}; output:\n"
                        f"{out.read_text() if out.exists() else ''}\nslurmctld.log ends:\n"
                        + "".join(log.read_text().splitlines(keepends=True)[-40:] if log.exists() else ""))
        time.sleep(0.3)


@pytest.mark.parametrize("warning", ["scancel", "timed"])
def test_signalled_job_is_requeued_and_ends_as_if_never_stopped(cluster, tmp_path, warning):
    """`scancel --batch --signal=USR1` after step 3, or SLURM's own timed warning: a 1-minute job with
    --signal=B:USR1@58 is warned at SLURM's next check, 2-32 s in (its job steps take 3 s each)."""
    out = tmp_path / "job.out"
    checkpoint, record = tmp_path / "ckpt", tmp_path / "record"
    timing = ["--time=1", "--signal=B:USR1@58"] if warning == "timed" else []
    sleep = "3" if warning == "timed" else "0.4"
    submitted = subprocess.run(cluster.client(
        ["sbatch", "--parsable", f"--output={out}", "--open-mode=append", "-N", "2", "--ntasks-per-node=1",
         *CPU_ONLY, *timing, str(REPO / "slurm" / "multi_node.sbatch"), EXAMPLE, *ARGS, "--step-sleep", sleep,
         "--checkpoint-dir", str(checkpoint), "--out", str(record)]),
        cwd=tmp_path, env=dict(cluster.env, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    text = lambda: out.read_text() if out.exists() else ""  # noqa: E731
    if warning == "scancel":
        wait_for(lambda: "step 3 epoch 0" in text(), "step 3", job_id, cluster, out)
        signalled = subprocess.run(cluster.client(["scancel", "--batch", "--signal=USR1", job_id]),
                                   env=cluster.env, capture_output=True, text=True, timeout=60)
        assert signalled.returncode == 0, signalled.stderr
    else:
        wait_for(lambda: "preempted: checkpoint" in text(), "the timed warning", job_id, cluster, out)
        # The requeued run gets a limit it does not reach, so that it is not warned again.
        updated = subprocess.run(cluster.client(["scontrol", "update", f"JobId={job_id}", "TimeLimit=10"]),
                                 env=cluster.env, capture_output=True, text=True, timeout=60)
        assert updated.returncode == 0, updated.stderr
    # SLURM holds a requeued job back until a begin time about two minutes on; start it 3 s on instead.
    # Not at once: slurmd revokes the first run's credential with a time in whole seconds, and refuses
    # a credential made in that same second ("Job credential revoked"), which fails the job.
    wait_for(lambda: job_field(cluster, job_id, "Restarts") == "1", "the requeue", job_id, cluster, out)
    subprocess.run(cluster.client(["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"]),
                   env=cluster.env, capture_output=True, text=True, timeout=60)
    wait_for(lambda: "done: 16 steps" in text(), "the end of the requeued run", job_id, cluster, out)
    wait_for(lambda: job_field(cluster, job_id, "JobState") in ENDED, "the end", job_id, cluster, out)
    output = text()
    assert job_field(cluster, job_id, "JobState") == "COMPLETED", output
    assert int(job_field(cluster, job_id, "Restarts")) == 1, output
    assert "preempted: checkpoint of step" in output and "resumed at step" in output, output
    stopped = int(output.split("preempted: checkpoint of step ")[1].split()[0])
    assert (3 if warning == "scancel" else 1) <= stopped < 16, output
    assert f"resumed at step {stopped} " in output and "done: 16 steps" in output, output
    seen = Counter(tuple(p) for path in glob.glob(str(record / "seen-*.json")) for p in json.load(open(path)))
    assert seen == Counter({(e, i): 1 for e in range(2) for i in range(48)})

    local = tmp_path / "local"
    done = subprocess.run([sys.executable, EXAMPLE, *ARGS, "--checkpoint-dir", str(local / "ckpt"), "--out",
                           str(local)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, got = np.load(local / "params.npz"), np.load(record / "params.npz")
    for key in expected.files:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
