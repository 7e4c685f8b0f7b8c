"""The slurm/ sbatch scripts, submitted to a real two-node SLURM cluster on this machine.

slurm/local_cluster.sh starts munged, slurmctld and two slurmd (nodes n1, n2) in a private
directory with ports of its own, so this can run beside a user's cluster or another test run.
Where this machine can make network namespaces (root, iproute2; always in CI), n1 and n2 run on
test hosts h1 and h2 of their own (tests/distributed/hosts.py), slurmctld on h1, and sbatch is
called on h1: the nodes' ranks see different hostnames and talk over TCP. Elsewhere both nodes
share this host. Skipped only where SLURM is not installed and we are not in CI;
.ci/slurm_setup.sh installs it.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import distml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts import SUBNET, Hosts, missing_rights  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "slurm" / "local_cluster.sh"
# The scripts ask for GPUs and 8 cores per rank; the local cluster has no GPU and 2 cores a node.
CPU_ONLY = ["--gpus-per-node=0", "--cpus-per-task=1"]
JOB_TIMEOUT = 120
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED"}

JOB = """
    import json, os, socket
    from mpi4py import MPI
    MPI.Is_initialized() or MPI.Init()
    comm = MPI.COMM_WORLD
    e = os.environ
    print(json.dumps({"rank": int(e["RANK"]), "local_rank": int(e["LOCAL_RANK"]),
                      "world_size": int(e["WORLD_SIZE"]), "local_world_size": int(e["LOCAL_WORLD_SIZE"]),
                      "node": e["SLURMD_NODENAME"], "host": socket.gethostname(), "mpi": [comm.rank, comm.size],
                      "sum": comm.allreduce(comm.rank + 1)}), flush=True)
"""

FAIL = """
    import os
    from mpi4py import MPI
    MPI.Is_initialized() or MPI.Init()
    if MPI.COMM_WORLD.rank == 1:
        raise RuntimeError("rank 1 broke on " + os.environ["SLURMD_NODENAME"])
    MPI.COMM_WORLD.recv(source=1)  # would wait for ever if rank 1's failure did not end the job
"""


def _free_port_base():
    """A port P with P, P+1 and P+2 free: slurmctld and the two slurmd."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            for port in (base, base + 1, base + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("expected three consecutive free ports, found none in 50 tries")


class Cluster:
    def __init__(self, directory, hosts=None):
        self.dir, self.hosts = directory, hosts
        bin_dir = os.path.dirname(sys.executable)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SLURM_") and k != "CUDA_VISIBLE_DEVICES"}
        # The jobs find this Python's distmlrun, python and mpiexec first.
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["DISTML_SLURM_DIR"] = str(directory / "cluster")
        env["DISTML_SLURM_PORT"] = str(_free_port_base())
        env["SLURM_CONF"] = str(directory / "cluster" / "slurm.conf")
        if hosts is not None:
            env["DISTML_SLURM_NODE_EXEC"] = hosts.agent()
            env["DISTML_SLURM_NODE_HOSTS"] = "h1=10.77.0.1 h2=10.77.0.2"
            env["PRTE_MCA_oob_tcp_if_include"] = env["OMPI_MCA_btl_tcp_if_include"] = SUBNET
        self.env = env

    def client(self, argv):
        """A SLURM client command line, run on the first node's host when the nodes have their own."""
        return argv if self.hosts is None else self.hosts.on("h1", argv)

    def control(self, command):
        return subprocess.run([str(CLUSTER), command], env=self.env, capture_output=True,
                              text=True, timeout=90)

    def submit(self, script, sbatch_args, program_args):
        """Run slurm/<script> (or a script at an absolute path) with sbatch for real; (final job state,
        the job's output)."""
        out = self.dir / f"{script}-{time.monotonic_ns()}.out"
        submitted = subprocess.run(
            self.client(["sbatch", "--parsable", f"--output={out}", *sbatch_args, str(REPO / "slurm" / script),
             *program_args]), cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=60)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip().split(";")[0]
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            shown = subprocess.run(self.client(["scontrol", "-o", "show", "job", job_id]), env=self.env,
                                   capture_output=True, text=True, timeout=60).stdout
            state = shown.split("JobState=")[1].split()[0] if "JobState=" in shown else "?"
            if state in ENDED:
                return state, out.read_text() if out.exists() else ""
            if time.monotonic() > deadline:
                subprocess.run(self.client(["scancel", job_id]), env=self.env, timeout=60)
                pytest.fail(f"job {job_id} ({script}) still {state} after {JOB_TIMEOUT} s; "
                            f"logs in {self.dir / 'cluster'}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [exe for exe in ("munged", "slurmctld", "slurmd", "sbatch", "srun")
               if shutil.which(exe) is None]
    in_ci = os.environ.get("CI") == "true"
    if missing and not in_ci:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing); .ci/slurm_setup.sh installs it")
    assert not missing, f"in CI SLURM must be installed (run .ci/slurm_setup.sh); missing {missing}"
    assert shutil.which("distmlrun", path=os.path.dirname(sys.executable)), \
        f"expected the distmlrun console script beside {sys.executable}; pip install -e ."
    hosts = None
    if in_ci or missing_rights() is None:
        try:
            hosts = Hosts(2)
        except RuntimeError:  # root, but without the rights to make network namespaces
            if in_ci:
                raise
    try:
        c = Cluster(tmp_path_factory.mktemp("slurm"), hosts)
        try:
            started = c.control("start")
            assert started.returncode == 0, started.stdout + started.stderr
            (c.dir / "job.py").write_text(textwrap.dedent(JOB))
            (c.dir / "fail.py").write_text(textwrap.dedent(FAIL))
            yield c
        finally:
            c.control("stop")
    finally:
        if hosts is not None:
            hosts.close()


def ranks(output):
    return sorted((json.loads(line) for line in output.splitlines() if line.startswith("{")),
                  key=lambda r: r["rank"])


def test_multi_node_one_rank_per_node(cluster):
    state, output = cluster.submit("multi_node.sbatch", ["-N", "2", "--ntasks-per-node=1", *CPU_ONLY],
                                   ["job.py"])
    assert state == "COMPLETED", output
    got = ranks(output)
    assert [(r["rank"], r["local_rank"], r["world_size"], r["local_world_size"], r["node"])
            for r in got] == [(0, 0, 2, 1, "n1"), (1, 0, 2, 1, "n2")], output
    assert all(r["mpi"] == [r["rank"], 2] and r["sum"] == 3 for r in got), output
    if cluster.hosts is not None:  # the nodes are hosts of their own
        assert [r["host"] for r in got] == ["h1", "h2"], output


def test_multi_node_two_ranks_per_node_with_srun(cluster):
    state, output = cluster.submit("multi_node.sbatch", ["-N", "2", "--ntasks-per-node=2", *CPU_ONLY],
                                   ["--launcher", "srun", "job.py"])
    assert state == "COMPLETED", output
    got = ranks(output)
    assert [(r["rank"], r["local_rank"], r["world_size"], r["local_world_size"], r["node"])
            for r in got] == [(0, 0, 4, 2, "n1"), (1, 1, 4, 2, "n1"),
                              (2, 0, 4, 2, "n2"), (3, 1, 4, 2, "n2")], output
    assert all(r["mpi"] == [r["rank"], 4] and r["sum"] == 10 for r in got), output
    if cluster.hosts is not None:
        assert [r["host"] for r in got] == ["h1", "h1", "h2", "h2"], output


def test_single_node_several_ranks(cluster):
    state, output = cluster.submit("single_node.sbatch", ["--ntasks-per-node=2", *CPU_ONLY],
                                   ["job.py"])
    assert state == "COMPLETED", output
    got = ranks(output)
    assert [(r["rank"], r["local_rank"], r["world_size"], r["local_world_size"]) for r in got] == \
        [(0, 0, 2, 2), (1, 1, 2, 2)], output
    assert {r["node"] for r in got} == {"n1"} and all(r["sum"] == 3 for r in got), output


@pytest.mark.parametrize("launcher", ["mpiexec", "srun"])
def test_failing_rank_fails_the_job(cluster, launcher):
    state, output = cluster.submit("multi_node.sbatch", ["-N", "2", "--ntasks-per-node=1", *CPU_ONLY],
                                   ["--launcher", launcher, "fail.py"])
    assert state == "FAILED", output
    assert "distmlrun: rank 1 exited with code 1; the job was stopped" in output
    assert "[rank 1] stderr: RuntimeError: rank 1 broke on n2" in output


def _findings(output):
    start = output.find("{")
    assert start >= 0, output
    return json.JSONDecoder().raw_decode(output[start:])[0]


def test_doctor_checks_every_rank_of_a_two_node_job(cluster):
    state, output = cluster.submit("multi_node.sbatch", ["-N", "2", "--ntasks-per-node=1", *CPU_ONLY],
                                   ["-m", "distml", "doctor", "--json"])
    assert state == "COMPLETED", output
    found = _findings(output)
    assert found["launcher"]["mpi_world_size"] == 2 and found["job"]["world_size"] == 2, output
    assert found["job"]["allreduce_ok"] and found["problems"] == [], output


def test_doctor_names_srun_without_pmix(cluster):
    """srun without --mpi=pmix starts every task as an MPI world of one: doctor says so, once, with the fix."""
    script = cluster.dir / "doctor_singletons.sbatch"
    script.write_text("#!/bin/bash\nsrun --mpi=none python -m distml doctor --json\n")
    state, output = cluster.submit(script, ["-N", "2", "--ntasks-per-node=1", *CPU_ONLY], [])
    assert state == "FAILED", output
    found = _findings(output)
    assert found["launcher"] == {"name": "srun", "promised": 2, "mpi_world_size": 1}, output
    assert found["problems"] == ["srun started 2 singletons: use `srun --mpi=pmix` "
                                 "(`srun --mpi=list` shows what it offers)"], output
    assert output.count('"problems"') == 1, output  # the first singleton speaks for all


def test_two_node_training_matches_one_machine_data_parallel(cluster, tmp_path):
    """The demo trained across two SLURM nodes ends with the same parameters as the same
    two-rank run on one machine (same seed, same shards, same averaged gradients)."""
    demo = str(REPO / "examples" / "mnist.py")
    args = ["--epochs", "2", "--no-progress"]
    state, output = cluster.submit("multi_node.sbatch", ["-N", "2", "--ntasks-per-node=1", *CPU_ONLY],
                                   [demo, *args, "--checkpoint-dir", str(tmp_path / "slurm")])
    assert state == "COMPLETED", output
    assert "2 ranks" in output and "epoch 2/2:" in output, output
    local = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", demo, *args,
                            "--checkpoint-dir", str(tmp_path / "local")],
                           cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]
    on_nodes = distml.load(str(tmp_path / "slurm" / "checkpoint.pt"))["model"]
    on_one_machine = distml.load(str(tmp_path / "local" / "checkpoint.pt"))["model"]
    for key in on_one_machine:
        np.testing.assert_allclose(on_nodes[key].numpy(), on_one_machine[key].numpy(), rtol=1e-6, atol=1e-7)
