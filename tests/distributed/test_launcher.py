"""distmlrun for real: mpiexec underneath, ranks as subprocesses, bounded by timeouts."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from distml.distributed import run
from distml.distributed.launch_rank import rank_environment

TIMEOUT = 120  # seconds for any one job; the failure tests also bound how fast they end


def clean_env(**extra):
    """This environment without what a surrounding job or GPU machine would add, plus `extra`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in
            ("CUDA_VISIBLE_DEVICES", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return {**base, **extra}


def distmlrun(tmp_path, *args, env=None, timeout=TIMEOUT):
    return subprocess.run([sys.executable, "-m", "distml.distributed.run", *args], cwd=tmp_path,
                          env=clean_env(**(env or {})), capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path, name, source):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path.relative_to(tmp_path))


REPORT = """
    import json, os, sys
    names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"]
    print(json.dumps({"env": {k: os.environ.get(k) for k in names}, "argv": sys.argv,
                      "name": __name__, "path0": sys.path[0]}))
"""


def reports(stdout):
    return sorted((json.loads(line) for line in stdout.splitlines() if line.startswith("{")),
                  key=lambda r: int(r["env"]["RANK"]))


@pytest.mark.parametrize("n", [2, 3])
def test_each_rank_gets_its_environment(tmp_path, n):
    script = write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, "-n", str(n), script)
    assert done.returncode == 0, done.stderr
    got = [r["env"] for r in reports(done.stdout)]
    assert [(e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"]) for e in got] == \
        [(str(r), str(r), str(n), str(n)) for r in range(n)]


def test_arguments_reach_the_script_untouched(tmp_path):
    script = write(tmp_path, "sub/report.py", REPORT)
    args = ["-n", "5", "--hostfile", "x", "-m", "y", "a b"]
    done = distmlrun(tmp_path, "-n", "2", "--tag-output", script, *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line[:4] for line in lines) == ["[0] ", "[1] "]
    for r in reports("\n".join(line[4:] for line in lines)):
        assert r["argv"] == [script, *args]
        assert r["name"] == "__main__"
        assert r["path0"] == str(tmp_path / "sub")  # as `python sub/report.py` sets it


def test_module_form(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/report.py", REPORT)
    done = distmlrun(tmp_path, "-n", "2", "-m", "pkg.report", "--lr", "0.1")
    assert done.returncode == 0, done.stderr
    got = reports(done.stdout)
    assert [r["env"]["RANK"] for r in got] == ["0", "1"]
    for r in got:
        assert r["argv"] == [str(tmp_path / "pkg" / "report.py"), "--lr", "0.1"]
        assert r["name"] == "__main__"
        assert r["path0"] == str(tmp_path)


def test_one_gpu_per_rank_from_cuda_visible_devices(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    env = {"CUDA_VISIBLE_DEVICES": "3,5"}
    done = distmlrun(tmp_path, script, env=env)  # -n defaults to the 2 GPUs
    assert done.returncode == 0, done.stderr
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in reports(done.stdout)] == ["3", "5"]
    done = distmlrun(tmp_path, "-n", "3", script, env=env)  # more ranks than GPUs: they share
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in reports(done.stdout)] == ["3", "5", "3"]
    done = distmlrun(tmp_path, "-n", "2", "--all-gpus-visible", script, env=env)
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in reports(done.stdout)] == ["3,5", "3,5"]


def test_exit_codes(tmp_path):
    script = write(tmp_path, "exit.py", """
        import os, sys
        sys.exit(int(sys.argv[1]) if os.environ["RANK"] == "1" else 0)
    """)
    assert distmlrun(tmp_path, "-n", "2", script, "0").returncode == 0
    done = distmlrun(tmp_path, "-n", "2", script, "3")
    assert done.returncode == 3
    assert "distmlrun: rank 1 exited with code 3" in done.stderr


FAIL_IN_RANK_1 = """
    import os, sys, time
    {setup}
    rank = int(os.environ["RANK"])
    with open(f"pid{{rank}}", "w") as f:
        f.write(str(os.getpid()))
    if rank == 1:
        for i in range(30):
            print("step", i)
        time.sleep(0.5)  # let rank 0 reach its wait
        raise ValueError("boom in rank 1")
    print("rank 0 waits", flush=True)
    {wait}
"""


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("setup, wait", [
    ("", "time.sleep(600)"),  # rank 0 never calls MPI
    ("from mpi4py import MPI; MPI.Is_initialized() or MPI.Init()",
     "MPI.COMM_WORLD.recv(source=1)"),  # rank 0 blocked in MPI, waiting for the failed rank
], ids=["sleeping", "in_mpi"])
def test_failing_rank_stops_the_job_and_is_named(tmp_path, setup, wait):
    script = write(tmp_path, "fail.py", FAIL_IN_RANK_1.format(setup=setup, wait=wait))
    start = time.monotonic()
    done = distmlrun(tmp_path, "-n", "2", script, timeout=60)
    assert time.monotonic() - start < 30
    assert done.returncode != 0
    summary = done.stderr[done.stderr.index("distmlrun: rank 1 exited with code 1;"):]
    assert "the job was stopped" in summary
    assert "[rank 1] stdout: step 29" in summary
    assert "[rank 1] stderr: ValueError: boom in rank 1" in summary
    assert 'File "fail.py", line' in summary  # the program's frames, not the launcher's
    assert "launch_rank" not in summary
    assert "rank 0 waits" in done.stdout
    pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(2)]
    deadline = time.monotonic() + 10
    while any(map(pid_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(pid_alive, pids))


def test_rank_killed_by_a_signal_is_named(tmp_path):
    script = write(tmp_path, "kill.py", """
        import os, signal, time
        if os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)
    """)
    done = distmlrun(tmp_path, "-n", "2", script, timeout=60)
    assert done.returncode == 128 + signal.SIGKILL
    assert "distmlrun: rank 1 was killed by signal 9" in done.stderr


def test_sigterm_to_distmlrun_stops_the_ranks(tmp_path):
    script = write(tmp_path, "hang.py", """
        import os, time
        with open(f"pid{os.environ['RANK']}", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "distml.distributed.run", "-n", "2", script],
                            cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"pid{r}").exists() for r in range(2)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.2)
        pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(2)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while any(map(pid_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(pid_alive, pids))


@pytest.mark.parametrize("env, expected", [
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "SLURM_PROCID": "1", "SLURM_STEP_ID": "0"}, (3, 1, 4, 2)),
    ({"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "1"},
     (2, 0, 3, 1)),
    ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "4", "SLURM_LOCALID": "0", "SLURM_NODEID": "2",
      "SLURM_STEP_NUM_TASKS": "5", "SLURM_STEP_TASKS_PER_NODE": "2(x2),1"}, (4, 0, 5, 1)),
    ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_NODEID": "0",
      "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_TASKS_PER_NODE": "2,1"}, (1, 1, 3, 2)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, (0, 0, 1, 1)),  # a batch script: one process
    ({"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}, (5, 1, 8, 4)),
    ({}, (0, 0, 1, 1)),
], ids=["open_mpi", "hydra", "srun", "srun_uneven", "sbatch_script", "torchrun", "alone"])
def test_rank_environment(env, expected):
    assert rank_environment(env) == expected


def test_program_starts_at_script_or_module():
    split = run._split_program
    assert split(["-n", "2", "s.py", "-n", "3"]) == (["-n", "2"], False, "s.py", ["-n", "3"])
    assert split(["--tag-output", "-m", "pkg.mod", "-x"]) == (["--tag-output"], True, "pkg.mod", ["-x"])
    assert split(["-n4", "--hostfile", "h", "s.py"]) == (["-n4", "--hostfile", "h"], False, "s.py", [])
    assert split(["-n", "2"]) == (["-n", "2"], False, None, [])


def test_mpiexec_flags(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(run, "cpu_count", lambda: 2)
    opts = run._parser().parse_args(["-n", "4"])
    env = {}
    cmd, style = run.launch_command(opts, ["python", "s.py"], env)
    assert style == "mpiexec" and cmd[-2:] == ["python", "s.py"]
    assert "--oversubscribe" in cmd and "mpi_yield_when_idle" in cmd
    assert cmd[cmd.index("--bind-to") + 1] == "none"
    assert env == {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    assert ("--allow-run-as-root" in cmd) == (os.geteuid() == 0)

    opts = run._parser().parse_args(["-H", "a:2,b:2", "--launcher-args", "--bind-to core"])
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "4"}
    cmd, _ = run.launch_command(opts, ["python", "s.py"], env)
    assert cmd[cmd.index("--host") + 1] == "a:2,b:2" and "-n" not in cmd
    assert "--oversubscribe" not in cmd and "mpi_yield_when_idle" not in cmd
    assert cmd.count("--bind-to") == 1 and cmd[cmd.index("--bind-to") + 1] == "core"
    forwarded = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-x"]
    assert forwarded == ["PATH", "PYTHONUNBUFFERED", "OMP_NUM_THREADS"]


def test_missing_script_fails_like_python(tmp_path):
    done = distmlrun(tmp_path, "-n", "2", "missing.py", timeout=60)
    assert done.returncode == 2
    assert f"can't open file '{tmp_path / 'missing.py'}'" in done.stderr
    assert "distmlrun: rank 0 exited with code 2" in done.stderr or \
        "distmlrun: rank 1 exited with code 2" in done.stderr


def test_launch_scripts(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bin_dir, "distmlrun")), \
        f"expected the distmlrun console script beside {sys.executable}; pip install -e ."
    script = write(tmp_path, "report.py", REPORT)
    (tmp_path / "hosts").write_text("localhost slots=2\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = bin_dir + os.pathsep + os.environ["PATH"]
    for launch, env in [("local.sh", {"NPROC": "3"}), ("hostfile.sh", {"HOSTFILE": "hosts"})]:
        done = subprocess.run([os.path.join(repo, "launch", launch), script, "x"], cwd=tmp_path,
                              env=clean_env(PATH=path, **env), capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        got = reports(done.stdout)
        n = 3 if launch == "local.sh" else 2
        assert [(r["env"]["RANK"], r["env"]["WORLD_SIZE"], r["argv"]) for r in got] == \
            [(str(r), str(n), [script, "x"]) for r in range(n)]
