"""`distml bench` on 2 ranks: every collective and size present, and the figures consistent with their
definitions (busbw from algbw as nccl-tests, ratio from the times, exposed <= communication <= step)."""
import json
import os
import subprocess
import sys

import pytest

from distml.tools import bench

TIMEOUT = 300


def run_bench(*args, ranks=2):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_"))}
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", str(ranks), "-m", "distml", "bench",
                           *args], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_two_ranks_collectives_and_a_ddp_step_are_consistent():
    out = run_bench("--max-bytes", "64K", "--iters", "2", "--model", "mlp", "--batch", "8", "--steps", "3", "--json")
    result = json.loads(out[out.find("{"):])
    assert result["world_size"] == 2 and result["hosts"] == 1 and result["memcpy_GBps"] > 0
    expected_sizes = bench.sizes(4, 64 << 10, 2)
    for op, factor in (("allreduce", 1.0), ("reduce_scatter", 0.5), ("allgather", 0.5)):
        rows = [r for r in result["collectives"] if r["op"] == op]
        assert [r["bytes"] for r in rows] == expected_sizes
        for r in rows:
            assert r["distml_algbw"] == pytest.approx(r["bytes"] / r["distml_us"] / 1e3)
            assert r["distml_busbw"] == pytest.approx(r["distml_algbw"] * factor)
            assert r["mpi_busbw"] == pytest.approx(r["mpi_algbw"] * factor)
            assert r["ratio"] == pytest.approx(r["mpi_us"] / r["distml_us"])
    model = result["model"]
    assert model["model"] == "mlp" and model["buckets"] >= 1
    assert model["gradient_bytes"] == 4 * (784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10)
    assert 0 <= model["exposed_ms"] <= model["communication_ms"] <= model["step_ms"]


def test_plain_table_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "busbw.png"
    out = run_bench("--ops", "allreduce", "--max-bytes", "1K", "--iters", "1", "--plot", str(png))
    lines = out.splitlines()
    assert lines[0].startswith("distml bench: 2 ranks on 1 host(s)")
    table = [line.split() for line in lines if line.split()[:1] == ["allreduce"]]
    assert [float(row[1]) for row in table] == [8, 16, 64, 256, 1]  # 8 B ... 1 KiB
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sizes_and_byte_arguments():
    assert bench.sizes(4, 1024, 4) == [16, 64, 256, 1024]
    assert bench.parse_bytes("256M") == 256 << 20 and bench.parse_bytes("64KiB") == 64 << 10
    assert bench.parse_bytes("4") == 4
