"""The flight recorder: records in one process, and distmlrun's merged report after injected
stalls, crashes, mismatches and timeouts at 2, 3 and 4 ranks (jobs under distmlrun, bounded by
timeouts)."""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from distml.distributed import flight_recorder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_env(**extra):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "OMPI_", "PMI_", "PMIX_", "DISTML_"))}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return {**base, "OMPI_MCA_mpi_yield_when_idle": "1", **extra}


ONE_PROCESS = textwrap.dedent("""
    import json
    import numpy as np
    import distml, distml.distributed as dist
    from distml.distributed import flight_recorder
    from distml.profiler import _recorder

    dist.init_process_group("mpi")
    t = distml.from_numpy(np.ones(1000, np.float32))
    dist.all_reduce(t)
    with _recorder.comm_args(bucket_index=3):  # the path DDP passes its bucket through
        dist.all_reduce(t, async_op=True).wait()
    dist.broadcast(distml.from_numpy(np.ones(4, np.float64)), src=0)
    print(json.dumps({"records": flight_recorder.records(), "path": flight_recorder.dump("test")}))
""")


def test_records_in_one_process(tmp_path):
    done = subprocess.run([sys.executable, "-c", ONE_PROCESS], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=clean_env(DISTML_RUN_DIR=str(tmp_path), DISTML_FLIGHT_RECORDER_SIZE="2"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    records = out["records"]
    assert len(records) == 2  # only the last two are kept
    first, second = records
    assert (first["op"], first["seq"], first["count"], first["dtype"], first["bytes"]) == \
        ("all_reduce", 2, 1000, "float32", 4000)
    assert first["bucket"] == 3 and first["state"] == "done" and first["ranks"] == [0]
    assert first["queued"] <= first["started"] <= first["ended"]
    assert (second["op"], second["seq"], second["dtype"], second["peer"], second["bucket"]) == \
        ("broadcast", 3, "float64", 0, -1)
    dumped = json.loads(open(out["path"]).read())
    assert dumped["reason"] == "test" and [r["seq"] for r in dumped["records"]] == [2, 3]


def test_report_names_who_waits_where():
    def rec(seq, state, bucket=-1):
        return {"seq": seq, "op": "all_reduce", "state": state, "bytes": 4 << 20, "dtype": "float32",
                "algo": "ring", "bucket": bucket, "ranks": [0, 1, 2], "error": ""}
    stack = ('Thread 0x0000000000000002 (most recent call first):\n  File "x.py", line 1 in other\n\n'
             'Current thread 0x0000000000000001 (most recent call first):\n  File "train.py", line 9 in step\n')
    dumps = {0: {"records": [rec(812, "done"), rec(813, "started", 3)]},
             1: {"records": [rec(812, "done")], "stacks": stack, "process": {"main_thread": 1}},
             2: {"records": [rec(812, "done"), rec(813, "queued", 3)]}}
    lines = flight_recorder.report(dumps, world_size=4)
    assert lines[0] == "ranks 0, 2 wait in all_reduce #813 (bucket 3, 4.0 MiB float32, ring, ranks 0, 1, 2)"
    assert lines[1] == ("rank 1 last finished all_reduce #812 (4.0 MiB float32, ring, ranks 0, 1, 2) "
                        "and is in Python:")
    assert lines[2] == 'File "train.py", line 9 in step'.join(["  ", ""])
    assert lines[3].startswith("rank(s) 3 wrote no dump")


PROGRAM = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import distml, distml.distributed as dist
    from distml.profiler import _recorder

    case = sys.argv[1]
    dist.init_process_group("mpi")
    rank = dist.get_rank()
    t = distml.from_numpy(np.ones(1 << 20, np.float32))  # 4 MiB
    for step in range(5):
        dist.all_reduce(t)
    if rank == 1 and case in ("stall", "timeout"):
        time.sleep(120)  # in Python, while the others wait for it
    if rank == 1 and case == "crash":
        raise ValueError("boom in rank 1")
    count = (1 << 20) + (rank == 1 and case == "mismatch")
    with _recorder.comm_args(bucket_index=3):
        dist.all_reduce(distml.from_numpy(np.ones(count, np.float32)), async_op=True).wait()
    print("unreachable", rank)
""")


def run(tmp_path, n, case, *options, env=None, timeout=150):
    path = tmp_path / "fr.py"
    path.write_text(PROGRAM)
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", str(n), *options, str(path), case],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=clean_env(**(env or {})))
    return done.returncode, done.stdout + done.stderr


def waiting_line(out, n):
    others = ", ".join(str(r) for r in range(n) if r != 1)
    who = f"rank {others} waits" if n == 2 else f"ranks {others} wait"
    return f"  {who} in all_reduce #6 (bucket 3, 4.0 MiB float32"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_timeout_of_distmlrun_prints_where_each_rank_is(tmp_path, n):
    rc, out = run(tmp_path, n, "stall", "--timeout", "30", env={"DISTML_TIMEOUT": "300"})
    assert rc == 124 and "unreachable" not in out, out
    report = out[out.index("flight recorder report:"):]
    assert waiting_line(out, n) in report, out
    assert "rank 1 last finished all_reduce #5 (4.0 MiB float32" in report, out
    assert re.search(r'and is in Python:\n\s+File ".*fr\.py", line 14 in <module>', report), out


@pytest.mark.parametrize("n", [2, 3, 4])
def test_collective_timeout_dumps_every_rank(tmp_path, n):
    rc, out = run(tmp_path, n, "timeout", env={"DISTML_TIMEOUT": "3"})
    assert rc != 0 and "unreachable" not in out, out
    # The summary comes from the status file of the first rank that failed.
    assert re.search(r"distmlrun: rank \d exited with code 1 in all_reduce #6 \(bucket 3, 4\.0 MiB", out), out
    report = out[out.index("flight recorder report:"):]
    assert waiting_line(out, n) in report and "it failed: all_reduce: timed out after 3 s" in report, out
    assert re.search(r'rank 1 last finished all_reduce #5 .* and is in Python:\n\s+File ".*fr\.py", line 14', report), out


@pytest.mark.parametrize("n", [2, 3, 4])
def test_crash_is_reported_with_the_collectives_the_others_wait_in(tmp_path, n):
    rc, out = run(tmp_path, n, "crash")
    assert rc != 0 and "unreachable" not in out, out
    assert "distmlrun: rank 1 exited with code 1;" in out, out
    assert "ValueError: boom in rank 1" in out
    folder = re.search(r"status files and flight recorder dumps are in (\S+)", out)[1]
    status = json.loads(open(os.path.join(folder, "status-1.json")).read())
    assert status["exit_code"] == 1 and status["exception"] == "ValueError: boom in rank 1"
    assert status["collective"] is None  # it raised between collectives
    report = out[out.index("flight recorder report:"):]
    assert waiting_line(out, n) in report, out
    assert "rank 1 last finished all_reduce #5" in report, out


@pytest.mark.parametrize("n", [2, 3, 4])
def test_mismatch_is_reported_as_failed_on_every_rank(tmp_path, n):
    rc, out = run(tmp_path, n, "mismatch")
    assert rc != 0 and "unreachable" not in out, out
    report = out[out.index("flight recorder report:"):]
    everyone = ", ".join(map(str, range(n)))
    assert f"  ranks {everyone} wait in all_reduce #6 (bucket 3" in report, out
    assert "it failed: all_reduce: ranks disagree on the collective or its tensors" in report, out
