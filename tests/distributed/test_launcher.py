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
from distml.distributed import launch_rank
from distml.distributed.launch_rank import rank_environment

TIMEOUT = 120  # seconds for any one job; the failure tests also bound how fast they end
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_env(**extra):
    """This environment without what a surrounding job or GPU machine would add, plus `extra`;
    the jobs import distml from this checkout."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in
            ("CUDA_VISIBLE_DEVICES", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
             "PRTE_MCA_prte_default_hostfile", "MASTER_ADDR", "MASTER_PORT")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
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
    names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES",
             "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME",
             "MASTER_ADDR", "MASTER_PORT", "FOO", "BAR"]
    print(json.dumps({"env": {k: os.environ.get(k) for k in names}, "argv": sys.argv,
                      "name": __name__, "path0": sys.path[0], "exe": sys.executable,
                      "optimize": sys.flags.optimize}))
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


@pytest.mark.parametrize("form", [["missing.py"], ["python", "-u", "missing.py"], ["--", "missing.py"]],
                         ids=["script", "python", "after_dashes"])
def test_missing_script_fails_like_python_before_any_rank(tmp_path, form):
    done = distmlrun(tmp_path, "-n", "2", *form, timeout=60)
    assert done.returncode == 2
    assert f"distmlrun: can't open file '{tmp_path / 'missing.py'}'" in done.stderr
    assert "no rank was started" in done.stderr
    assert "rank 0" not in done.stderr and "prterun" not in done.stderr


def test_launch_scripts(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bin_dir, "distmlrun")), \
        f"expected the distmlrun console script beside {sys.executable}; pip install -e ."
    script = write(tmp_path, "report.py", REPORT)
    (tmp_path / "hosts").write_text("localhost slots=2\n")
    repo = REPO
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


def python_on_path():
    """PATH with this interpreter's folder first, so that `python` there is this Python."""
    return os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


def check_torchrun_environment(got, n, nodes=((0, None),)):
    """What torchrun sets, on every rank of an n-rank job on one machine."""
    assert [(e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"]) for e in got] == \
        [(str(r), str(r), str(n), str(n)) for r in range(n)]
    assert [(e["GROUP_RANK"], e["GROUP_WORLD_SIZE"], e["ROLE_RANK"], e["ROLE_WORLD_SIZE"], e["ROLE_NAME"])
            for e in got] == [("0", "1", str(r), str(n), "default") for r in range(n)]
    assert {e["MASTER_ADDR"] for e in got} == {"127.0.0.1"}
    ports = {e["MASTER_PORT"] for e in got}
    assert len(ports) == 1 and 1024 <= int(ports.pop()) < 65536


@pytest.mark.parametrize("n, form, argv0", [
    (2, ["-n", "2", "report.py"], "report.py"),
    (3, ["-np", "3", "report.py"], "report.py"),
    (2, ["-n", "2", "python", "report.py"], "report.py"),
    (3, ["-np", "3", "python", "-u", "report.py"], "report.py"),
    (2, ["--nproc-per-node", "2", "report.py"], "report.py"),
    (3, ["--nproc_per_node=3", "python", "report.py"], "report.py"),
    (2, ["-n", "2", "--", "report.py"], "report.py"),
    (2, ["-n", "2", "python", "-m", "report"], "{tmp}/report.py"),
    (2, ["-n", "2", "--", "-m", "report"], "{tmp}/report.py"),
], ids=["n", "np", "python", "python_u", "nproc_per_node", "nproc_per_node_eq", "dashes",
        "python_m", "dashes_m"])
def test_launcher_forms(tmp_path, n, form, argv0):
    write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, *form, "--lr", "0.1", env={"PATH": python_on_path()})
    assert done.returncode == 0, done.stderr
    got = reports(done.stdout)
    check_torchrun_environment([r["env"] for r in got], n)
    for r in got:
        assert r["argv"] == [argv0.format(tmp=tmp_path), "--lr", "0.1"]
        assert r["name"] == "__main__"
        assert r["exe"] == sys.executable


def test_python_options_reach_each_ranks_interpreter(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, "-n", "2", "python", "-u", "-O", "-W", "ignore", script,
                     env={"PATH": python_on_path()})
    assert done.returncode == 0, done.stderr
    assert [r["optimize"] for r in reports(done.stdout)] == [1, 1]
    done = distmlrun(tmp_path, "-n", "2", "python", "-c", "print(1)", timeout=60)
    assert done.returncode != 0
    assert "distmlrun: python's option -c is not supported here" in done.stderr


def test_x_exports_variables_to_every_rank(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, "-x", "FOO=a=b c", "-n", "2", "-x", "BAR", script, "-x", "FOO=no",
                     env={"BAR": "from here"})
    assert done.returncode == 0, done.stderr
    got = reports(done.stdout)
    assert [(r["env"]["FOO"], r["env"]["BAR"]) for r in got] == [("a=b c", "from here")] * 2
    assert [r["argv"] for r in got] == [[script, "-x", "FOO=no"]] * 2  # the program's own -x
    done = distmlrun(tmp_path, "-n", "2", "-x", "NOT_SET_ANYWHERE", script, timeout=60)
    assert done.returncode == 2
    assert "-x NOT_SET_ANYWHERE: NOT_SET_ANYWHERE is not set here" in done.stderr


def test_double_dash_ends_the_launchers_options(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    args = ["--timeout", "1", "-n", "5", "--", "-x", "V"]
    done = distmlrun(tmp_path, "-n", "2", "--", script, *args)
    assert done.returncode == 0, done.stderr
    assert [r["argv"] for r in reports(done.stdout)] == [[script, *args]] * 2


def test_timeout_stops_the_whole_job(tmp_path):
    script = write(tmp_path, "sleep.py", """
        import os, time
        with open(f"pid{os.environ['RANK']}", "w") as f:
            f.write(str(os.getpid()))
        print("sleeping", flush=True)
        time.sleep(600)
    """)
    start = time.monotonic()
    done = distmlrun(tmp_path, "--timeout", "8", "-n", "2", script, timeout=60)
    assert time.monotonic() - start < 40
    assert done.returncode == 124
    assert "distmlrun: the job ran past --timeout 8 s; stopping the ranks" in done.stderr
    assert done.stdout.count("sleeping") == 2
    pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(2)]
    deadline = time.monotonic() + 10
    while any(map(pid_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(pid_alive, pids))


def test_hosts_from_the_mpi_operators_hostfile(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    (tmp_path / "hosts").write_text("# written by the MPI Operator\nlocalhost slots=3\n")
    done = distmlrun(tmp_path, script, env={"PRTE_MCA_prte_default_hostfile": "hosts"})
    assert done.returncode == 0, done.stderr
    got = [r["env"] for r in reports(done.stdout)]
    assert [(e["RANK"], e["WORLD_SIZE"], e["GROUP_RANK"], e["MASTER_ADDR"]) for e in got] == \
        [(str(r), "3", "0", "localhost") for r in range(3)]


def test_nnodes_picks_the_first_hosts_and_oversubscribe_passes_slots(tmp_path):
    script = write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, "-H", "localhost:2,otherhost:2", "--nnodes", "1", script)
    assert done.returncode == 0, done.stderr
    got = [r["env"] for r in reports(done.stdout)]
    assert [(e["RANK"], e["WORLD_SIZE"], e["MASTER_ADDR"]) for e in got] == \
        [(str(r), "2", "localhost") for r in range(2)]
    (tmp_path / "hosts").write_text("localhost slots=1\n")
    done = distmlrun(tmp_path, "--hostfile", "hosts", "--oversubscribe", "-n", "2", script)
    assert done.returncode == 0, done.stderr
    assert [r["env"]["RANK"] for r in reports(done.stdout)] == ["0", "1"]


@pytest.mark.parametrize("args, message", [
    (["--nnodes", "2", "report.py"], "--nnodes needs the nodes to choose from"),
    (["-H", "a:1,b:1", "--nnodes", "3", "report.py"], "--nnodes 3: only 2 nodes are given (a, b)"),
    (["-n", "2", "--nproc-per-node", "2", "report.py"], "not allowed with argument"),
    (["--nproc-per-node", "two", "report.py"], "--nproc-per-node expects a positive number, gpu, cpu or auto"),
    (["--timeout", "0", "report.py"], "--timeout must be a positive number of seconds, got 0"),
    (["-n", "2"], "expected a script or -m module to run, got none"),
])
def test_option_errors(tmp_path, args, message):
    write(tmp_path, "report.py", REPORT)
    done = distmlrun(tmp_path, *args, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


def test_split_program_forms():
    split = run._split_program
    assert split(["-np", "2", "-x", "A", "python", "-u", "s.py"]) == \
        (["-np", "2", "-x", "A"], False, "python", ["-u", "s.py"])
    assert split(["-n", "2", "--", "-m", "pkg", "-n"]) == (["-n", "2"], True, "pkg", ["-n"])
    assert split(["--timeout", "5", "--", "s.py", "--"]) == (["--timeout", "5"], False, "s.py", ["--"])
    assert split(["--nproc_per_node", "2", "s.py"]) == (["--nproc_per_node", "2"], False, "s.py", [])
    assert split(["-n", "2", "--"]) == (["-n", "2", "--"], False, None, [])
    python = run._split_python
    assert python(sys.executable, ["-u", "-W", "error", "-Xdev", "-m", "pkg", "-u"]) == \
        ([sys.executable, "-u", "-W", "error", "-Xdev"], True, "pkg", ["-u"])
    assert python(sys.executable, ["-uO", "s.py", "-m", "x"]) == ([sys.executable, "-uO"], False, "s.py", ["-m", "x"])
    assert run._is_python("python") and run._is_python("/usr/bin/python3.12")
    assert not run._is_python("python.py") and not run._is_python("train.py")


def test_hostfiles_and_placement(tmp_path, monkeypatch):
    hosts = tmp_path / "hosts"
    hosts.write_text("a slots=2  # first\n\nb slots=2 max_slots=4\na slots=1\nc\n")
    assert run.read_hostfile(str(hosts)) == [("a", 3), ("b", 2), ("c", None)]
    assert run.parse_host_list("a:2,b,b,c:1") == [("a", 2), ("b", 2), ("c", 1)]
    parser = run._parser()

    def place(*args, environ=None):
        opts = parser.parse_args(list(args))
        master, sizes = run.place(opts, [], environ or {})
        return opts, master, sizes

    opts, master, sizes = place("-H", "n1:2,n2:2,n3:1", "-n", "3")
    assert (opts.nproc, master, sizes) == (3, "n1", [2, 1])
    opts, master, sizes = place("-H", "n1:2,n2:2,n3:1", "--nnodes", "2", "--nproc-per-node", "3")
    assert (opts.host, opts.nproc, opts.map_by, sizes) == ("n1:2,n2:2", 6, "ppr:3:node", [3, 3])
    opts, master, sizes = place("--hostfile", str(hosts), "--nnodes", "2")
    assert (opts.hostfile, opts.host, opts.nproc, sizes) == (None, "a:3,b:2", None, [3, 2])
    with pytest.raises(ValueError, match="needs slots=K on every line"):
        place("--hostfile", str(hosts), "--nnodes", "3")
    opts, master, sizes = place("-n", "4")
    assert (master, sizes, opts.map_by) == ("127.0.0.1", [4], "slot")
    monkeypatch.setattr(run, "cpu_count", lambda: 6)
    opts, master, sizes = place("--nproc-per-node", "auto")
    assert (opts.nproc, sizes) == (6, [6])
    slurm = {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2", "SLURM_TASKS_PER_NODE": "3,2"}
    opts, master, sizes = place("--launcher", "srun", "--nnodes", "1", environ=slurm)
    assert (opts.nnodes, sizes) == (1, [3])
    opts, master, sizes = place(environ=slurm)
    assert (opts.nproc, sizes) == (None, [3, 2])


@pytest.mark.parametrize("rank, local_rank, size, local_size, env, expected", [
    (3, 0, 5, 2, {"DISTML_NODE_SIZES": "3,2"}, (1, 2)),
    (2, 2, 5, 3, {"DISTML_NODE_SIZES": "3,2"}, (0, 2)),
    (5, 1, 8, 4, {}, (1, 2)),  # torchrun's even layout
    (2, 2, 3, 3, {"DISTML_NODE_SIZES": "2,1"}, (0, 1)),  # MPI found one node: it knows best
    (4, 0, 5, 1, {"SLURM_STEP_ID": "0", "SLURM_NODEID": "2", "SLURM_STEP_NUM_NODES": "3"}, (2, 3)),
])
def test_node_environment(rank, local_rank, size, local_size, env, expected):
    assert launch_rank.node_environment(rank, local_rank, size, local_size, env) == expected


def test_mpiexec_exports_and_oversubscribe(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    opts = run._parser().parse_args(["-H", "a:1", "-x", "FOO=1", "-x", "PATH", "--oversubscribe"])
    env = {"PATH": "/bin", "MASTER_ADDR": "a", "MASTER_PORT": "1234"}
    cmd, _ = run.launch_command(opts, ["python", "s.py"], env)
    forwarded = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-x"]
    assert forwarded == ["PYTHONUNBUFFERED", "MASTER_ADDR", "MASTER_PORT", "FOO", "PATH"]
    assert cmd.count("--oversubscribe") == 1
    opts = run._parser().parse_args(["-n", "2", "-x", "FOO"])
    cmd, _ = run.launch_command(opts, ["python", "s.py"], {})
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-x"] == ["FOO"]


BACKENDS = """
    import json
    import distml
    import distml.distributed as dist
    found = {"available": [dist.is_available(), dist.is_mpi_available(), dist.is_gloo_available(),
                           dist.is_nccl_available()]}
    for backend in ["nccl", "cpu:gloo,cuda:nccl", "ucc"]:
        try:
            dist.init_process_group(backend)
        except Exception as e:
            found[backend] = [type(e).__name__, str(e)]
    dist.init_process_group(BACKEND)
    t = distml.ones(2) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    found["sum"] = t.tolist()
    found["size"] = dist.get_world_size()
    print(json.dumps(found))
"""


@pytest.mark.parametrize("backend", ["gloo", "mpi", None, "GLOO"],
                         ids=["gloo", "mpi_name", "default", "gloo_upper_case"])  # id "mpi": pytest-mpi skips it
def test_backend_names(tmp_path, backend):
    script = write(tmp_path, "backends.py", BACKENDS.replace("BACKEND", repr(backend)))
    done = distmlrun(tmp_path, "-n", "2", script)
    assert done.returncode == 0, done.stderr
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(found) == 2
    for f in found:
        assert f["available"] == [True, True, True, False]
        for name in ("nccl", "cpu:gloo,cuda:nccl"):
            assert f[name][0] == "RuntimeError"
            assert "distml's GPU backend (NCCL) does not exist yet; use init_process_group('mpi')" in f[name][1]
        assert f["ucc"][0] == "ValueError" and "Invalid backend: 'ucc'" in f["ucc"][1]
        assert (f["size"], f["sum"]) == (2, [3.0, 3.0])


@pytest.mark.parametrize("env, says", [
    ({"WORLD_SIZE": "2", "RANK": "1"}, "the launcher promised 2 ranks but MPI started a world of one"),
    ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4"}, "srun started 4 singletons"),
], ids=["world_size", "srun"])
def test_singleton_trap_raises_at_init(env, says):
    code = ("import distml.distributed as dist\n"
            "try:\n    dist.init_process_group('gloo')\n"
            "except RuntimeError as e:\n    print(e)\n    raise SystemExit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(**env), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("init_process_group: " + says)
    assert "srun --mpi=pmix" in done.stdout
    alone = subprocess.run([sys.executable, "-c", code.replace("'gloo'", "")], env=clean_env(),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert alone.returncode == 0, alone.stderr


def test_a_lost_host_fails_the_job_even_when_mpiexec_exits_0(tmp_path):
    # PRRTE, having lost a host's daemon, may end mpiexec with code 0 (seen on the netns test hosts).
    fake = write(tmp_path, "mpiexec", """\
        #!/bin/sh
        if [ "$1" = "--version" ]; then echo "mpiexec (Open MPI) 5.0.11"; exit 0; fi
        echo "PRTE has lost communication with a remote daemon." >&2
        echo "  HNP daemon   : [prterun-h1-1@0,0] on node h1" >&2
        echo "  Remote daemon: [prterun-h1-1@0,1] on node h2" >&2
        exit 0
        """)
    (tmp_path / fake).chmod(0o755)
    write(tmp_path, "train.py", "print('hello')\n")
    done = distmlrun(tmp_path, "-n", "2", "train.py", env={"DISTML_MPIEXEC": str(tmp_path / fake)})
    assert done.returncode != 0, done.stderr
    assert "distmlrun: host h2 was lost; the job was stopped" in done.stderr, done.stderr
