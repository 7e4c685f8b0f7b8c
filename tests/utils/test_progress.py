"""distml.utils.progress.progress_bar: only rank 0 draws, and into a pipe at most every LOG_INTERVAL s."""
import io
import os
import subprocess
import sys
import time

from distml.utils import progress
from distml.utils.progress import progress_bar

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOOP = """
import os, sys, time
from distml.utils import progress
progress.LOG_INTERVAL = 0.5
rank = os.environ.get("RANK", "0")
bar = progress.progress_bar(range(40), desc="rank" + rank)
for step in bar:
    time.sleep(0.05)
    bar.set_postfix(step=step)
"""


def draws(text, desc):
    return sum(desc in part for part in text.replace("\r", "\n").split("\n"))


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = REPO
    return env


def test_into_a_pipe_under_distmlrun_only_rank_0_draws_every_interval(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", str(script)],
                          env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # 40 steps of 50 ms: the first draw after 0.5 s, then about every 0.5 s, and the last one; not 40
    assert 2 <= draws(done.stderr, "rank0") <= 6, done.stderr
    assert draws(done.stderr, "rank1") == 0, done.stderr
    assert "step=" in done.stderr


def test_short_loops_leave_nothing_in_a_log_but_draw_on_a_terminal(monkeypatch):
    log = io.StringIO()
    for _ in progress_bar(range(5), file=log, desc="quiet"):
        pass
    assert log.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = progress_bar(range(5), file=screen, desc="shown")
    for step in bar:
        time.sleep(0.12)  # more than the terminal's 0.1 s
        bar.set_postfix(step=step)
    assert draws(screen.getvalue(), "shown") >= 4
    assert "step=" in screen.getvalue()


def test_disabled_on_other_ranks_and_when_asked(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert progress_bar(range(3), file=io.StringIO()).disable
    monkeypatch.setenv("RANK", "0")
    assert not progress_bar(range(3), file=io.StringIO()).disable
    assert progress_bar(range(3), file=io.StringIO(), disable=True).disable


def test_explicit_interval_and_set_postfix_refresh(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL", 100.0)
    log = io.StringIO()
    bar = progress_bar(range(3), file=log, mininterval=0, delay=0, desc="asked")
    for step in bar:
        bar.set_postfix(step=step, refresh=True)  # an explicit refresh still draws at once
    assert draws(log.getvalue(), "asked") >= 4
