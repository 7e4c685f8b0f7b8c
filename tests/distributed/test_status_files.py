"""Each rank's status file (launch_rank.write_status), which distmlrun reads for its failure report."""
import json
import os
import socket
import subprocess
import sys
import textwrap

from distml.distributed import launch_rank

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_write_status_records_the_exception_without_launcher_frames(tmp_path):
    try:
        raise ValueError("boom")
    except ValueError as e:
        error = e
    path = launch_rank.write_status(3, 1, error, environ={"DISTML_RUN_DIR": str(tmp_path)})
    status = json.loads(open(path).read())
    assert path == str(tmp_path / "status-3.json") and not list(tmp_path.glob("*.tmp"))
    assert (status["rank"], status["exit_code"], status["pid"], status["host"]) == \
        (3, 1, os.getpid(), socket.gethostname())
    assert status["exception"] == "ValueError: boom"
    assert status["traceback"][-1] == "ValueError: boom" and 'raise ValueError("boom")' in status["traceback"][-2]
    assert status["collective"] is None  # no process group in this process
    assert launch_rank.write_status(3, 0, environ={}) is None  # no run folder: nothing written


def test_every_rank_writes_its_exit_code(tmp_path):
    script = tmp_path / "exit.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        sys.exit(3 if os.environ["RANK"] == "1" else 0)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_"))}
    env.update(PYTHONPATH=REPO, DISTML_RUN_DIR=str(tmp_path / "run"))
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", str(script)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 3, done.stderr
    assert "distmlrun: rank 1 exited with code 3; the job was stopped" in done.stderr
    codes = {}
    for rank in (0, 1):
        path = tmp_path / "run" / f"status-{rank}.json"
        if path.exists():  # rank 0 may be stopped before it wrote its own
            codes[rank] = json.loads(path.read_text())["exit_code"]
    assert codes.get(1) == 3 and codes.get(0, 0) == 0
