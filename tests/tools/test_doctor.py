"""`distml doctor` for real: one process, jobs of 2 and 4 ranks under distmlrun, singletons that a
launcher promised more ranks (the srun-without-PMIx case), and the job checks on crafted rank reports."""
import json
import os
import socket
import subprocess
import sys

import pytest
from mpi4py import MPI

import distml
from distml.tools import doctor

TIMEOUT = 120


def clean_env(**extra):
    """This environment without what a surrounding launcher would add, plus `extra`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "OMPI_", "PMI_", "PMIX_")) and k not in ("RANK", "WORLD_SIZE")}
    base.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return {**base, **extra}


def doctor_json(ranks=None, env=None):
    """Run `distml doctor --json` alone, or under distmlrun with `ranks` ranks: (process, findings)."""
    launcher = [sys.executable] if ranks is None else [sys.executable, "-m", "distml.distributed.run", "-n", str(ranks)]
    done = subprocess.run([*launcher, "-m", "distml", "doctor", "--json"], env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=TIMEOUT)
    start = done.stdout.find("{")
    return done, (json.loads(done.stdout[start:]) if start >= 0 else None)


def test_one_process_reports_build_mpi_threads_and_gpus():
    done, found = doctor_json()
    assert done.returncode == 0, done.stdout + done.stderr
    assert found["problems"] == []
    assert found["build"]["distml"] == distml.__version__
    assert found["mpi"]["built_against"] == found["mpi"]["mpi4py_loads"] == \
        MPI.Get_library_version().splitlines()[0].split(",")[0]
    assert found["threads"]["cores"] == len(os.sched_getaffinity(0))
    assert any(pool["api"] == "blas" for pool in found["threads"]["pools"])
    assert found["gpus"]["devices"] == distml.cuda.device_count()
    assert found["launcher"] == {"name": None, "promised": None, "mpi_world_size": 1}
    assert "job" not in found


def test_plain_report_names_each_topic():
    done = subprocess.run([sys.executable, "-m", "distml", "doctor"], env=clean_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    topics = [line.split()[0] for line in done.stdout.splitlines()[1:-1]]
    assert topics == ["build", "mpi", "threads", "gpus"]
    assert done.stdout.splitlines()[-1] == "no problems found"


@pytest.mark.parametrize("n", [2, 4])
def test_every_rank_of_a_job_is_checked(n):
    done, found = doctor_json(n)
    assert done.returncode == 0, done.stdout + done.stderr
    job = found["job"]
    assert job["world_size"] == n and found["launcher"]["mpi_world_size"] == n
    assert job["hosts"] == {socket.gethostname(): list(range(n))}
    assert job["shared_memory_arena"] is True and job["allreduce_ok"] is True
    assert found["problems"] == []
    cores = len(os.sched_getaffinity(0))
    assert any("share" in note for note in job["notes"]) == (n > cores)


def test_arena_switched_off_is_a_problem():
    done, found = doctor_json(2, env={"DISTML_SHM": "0"})
    assert done.returncode == 0, done.stderr
    assert found["job"]["shared_memory_arena"] is False
    assert found["problems"] == ["all ranks share one host but the shared-memory arena is off: unset DISTML_SHM=0"]


def test_srun_singletons_are_named_with_the_fix():
    srun = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0"}
    done, found = doctor_json(env=srun)
    assert done.returncode == 1
    assert found["problems"] == ["srun started 4 singletons: use `srun --mpi=pmix` "
                                 "(`srun --mpi=list` shows what it offers)"]
    other = subprocess.run([sys.executable, "-m", "distml", "doctor"], env=clean_env(**{**srun, "SLURM_PROCID": "2"}),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert (other.returncode, other.stdout) == (1, "")  # the first singleton speaks for all


def test_torchrun_style_environment_without_mpi_is_named():
    done, found = doctor_json(env={"WORLD_SIZE": "2", "RANK": "0"})
    assert done.returncode == 1
    assert found["problems"] == ["the launcher promised 2 ranks but MPI started a world of one: start the job "
                                 "with distmlrun or mpirun (torchrun does not start MPI ranks)"]


def rank_report(rank, host, n, local_size, **changes):
    return {"rank": rank, "host": host, "local_rank": 0, "local_size": local_size, "shared_memory": False,
            "threads": 1, "cpus": [0, 1], "allreduce": n * (n + 1) / 2, "allreduce_us": 10.0, **changes}


def test_job_checks_on_crafted_reports():
    ranks = [rank_report(r, f"n{r // 2}", 4, 2) for r in range(4)]
    job, problems = doctor._judge_job(ranks)
    assert problems == []
    assert job["job"]["hosts"] == {"n0": [0, 1], "n1": [2, 3]} and job["job"]["shared_memory_arena"] is False

    ranks[3]["allreduce"] = 7.0
    ranks[1]["local_size"] = 1
    ranks[2]["threads"] = 3
    _, problems = doctor._judge_job(ranks)
    assert problems == [
        "allreduce of rank+1 gave the wrong sum on ranks [3] (expected 10): check that every rank runs the same "
        "distml and MPI",
        "host n0 runs ranks [0, 1] but MPI groups them as [1, 2] per shared-memory node: check that the hostnames "
        "are unique per machine",
        "2 ranks on n1 run 4 threads on 2 cores: set OMP_NUM_THREADS=1 (distmlrun does this itself)"]


def test_launcher_world_size_prefers_the_launchers_own_variables():
    assert doctor.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "3", "WORLD_SIZE": "8"}) == (3, "mpiexec")
    assert doctor.launcher_world_size({"SLURM_STEP_NUM_TASKS": "2"}) == (2, "srun")
    assert doctor.launcher_world_size({}) == (None, None)
