"""Fuzzing distml.load: crafted and mutated checkpoints of every format it reads either load or
raise CheckpointError, never crash the process, and never yield bytes from outside the file.

Valid small files (torch.save zip and legacy, distml.save versions 1 and 2, safetensors) are
mutated with a seeded RNG: byte flips, truncation, zip member edits (cut, grown, removed, swapped,
recompressed), pickle opcode edits (ints such as sizes, strides, offsets and numels set to edge
values, strings and globals replaced, opcodes deleted, repeated, swapped) and header JSON edits.
Worker subprocesses load them in batches, so a segfault is one failed file, not a dead test run.
Every loaded tensor's elements must be byte strings found in the file (or its decompressed zip
members): the tensors hold distinctive values, so memory read from outside a storage shows.
"""
import io
import json
import os
import pickle
import pickletools
import random
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

N_PER_FORMAT = 5000
FORMATS = ("torch-zip", "torch-legacy", "distml-v1", "distml-v2", "safetensors")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- the corpus ----
SPECIAL = [-2**63, -2**31, -1, 0, 1, 2, 3, 5, 7, 15, 16, 255, 2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]
DTYPES = ["F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "C64", "F8_E4M3", "x",
          "<f4", "<f8", "|b1", "<i8", ">f4", "bfloat16", "<V2", "O", "<U3", "|S0", "<M8[s]", "<c16", "", "f4,f4"]

def pattern(n, dtype):
    import torch
    # distinctive values: 0x5A-based bytes plus the index
    return torch.arange(n, dtype=torch.float64).mul(1.25).add(3.5).to(dtype)

def torch_bases():
    import torch
    out = []
    a = pattern(24, torch.float32).reshape(4, 6)
    sd = {"w": a, "t": a.t(), "s": a[1:, 2:5], "b": pattern(5, torch.bfloat16), "h": pattern(3, torch.float16),
          "l": torch.arange(7, dtype=torch.int64) * 1001 + 77, "d": pattern(4, torch.float64), "z": torch.zeros(0, 3),
          "m": torch.tensor([True, False, True]), "c": torch.arange(5, dtype=torch.int8), "k": torch.tensor(2.5)}
    for legacy in (False, True):
        for obj in (sd, {"x": a}, [a[::2], a[1::2, ::3]], torch.nn.Linear(3, 2).state_dict(),
                    {"p": torch.nn.Parameter(pattern(6, torch.float32)), "e": 3, "n": "name"}):
            buf = io.BytesIO(); torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
            out.append((("torch-legacy" if legacy else "torch-zip"), buf.getvalue()))
    return out

def distml_bases():
    import distml
    import torch
    out = []
    a = distml.tensor(pattern(24, torch.float32).reshape(4, 6).numpy())
    for obj in ({"w": a, "i": distml.arange(5) * 1001 + 3, "e": 1, "s": "x", "t": (a[0], [a[1]])},
                {"b": distml.tensor(pattern(5, torch.float32).numpy()).to(distml.bfloat16), "n": np.arange(4.0) + 0.5},
                distml.nn.Linear(3, 2).state_dict()):
        for version in (1, 2):
            if version == 2:
                obj = {"obj": obj, "set": {1, 2}}
            buf = io.BytesIO(); distml.save(obj, buf)
            out.append((f"distml-v{version}", buf.getvalue()))
    return out

def st_bases():
    import torch
    from safetensors.torch import save as st_save
    a = pattern(24, torch.float32).reshape(4, 6)
    return [("safetensors", st_save(d)) for d in (
        {"w": a, "b": pattern(5, torch.bfloat16), "l": torch.arange(7) * 1001 + 77, "z": torch.zeros(0, 2),
         "m": torch.tensor([True, False])}, {"x": pattern(3, torch.float64)})]

def enc_int(v):
    return pickle.dumps(v, 2)[2:-1]

def enc_str(s):
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b

def mutate_pickle(data, rng):
    ops = []
    for op, arg, pos in pickletools.genops(data):
        ops.append([op, arg, pos])
    segs = [data[ops[i][2]:(ops[i + 1][2] if i + 1 < len(ops) else len(data))] for i in range(len(ops))]
    keep = [i for i, (op, _, _) in enumerate(ops) if op.name != "FRAME"]
    segs = [segs[i] for i in keep]; ops = [ops[i] for i in keep]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        i = rng.randrange(len(segs)); op = ops[i][0]; r = rng.random()
        ints = [j for j, o in enumerate(ops) if o[0].name in ("BININT", "BININT1", "BININT2", "LONG1", "INT")]
        if r < 0.5 and ints:
            segs[rng.choice(ints)] = enc_int(rng.choice(SPECIAL + [rng.randrange(-50, 50)]))
        elif r < 0.6:
            strs = [j for j, o in enumerate(ops) if isinstance(o[1], str)]
            if strs:
                j = rng.choice(strs)
                s = rng.choice(["", "0", "1", "99", "cpu", "cuda:7", "meta", "xla", "\udcff", "a" * 300, "FloatStorage",
                                "HalfStorage", "BFloat16Storage", "BoolStorage", "LongStorage", ops[j][1][::-1]])
                segs[j] = enc_str(s) if ops[j][0].name not in ("GLOBAL",) else b"c" + rng.choice(
                    [b"torch\nFloatStorage\n", b"torch\nBFloat16Storage\n", b"torch\nLongStorage\n",
                     b"builtins\nlist\n", b"collections\nOrderedDict\n", b"torch._utils\n_rebuild_tensor_v2\n",
                     b"torch\nUntypedStorage\n", b"torch\nSize\n"])
        elif r < 0.7:
            del segs[i]; del ops[i]
        elif r < 0.8:
            segs.insert(i, segs[i]); ops.insert(i, ops[i])
        elif r < 0.9:
            j = rng.randrange(len(segs)); segs[i], segs[j] = segs[j], segs[i]; ops[i], ops[j] = ops[j], ops[i]
        else:
            segs[i] = bytes([rng.randrange(256)]) + segs[i][1:]
    return b"".join(segs)

def mutate_json(text, rng):
    doc = json.loads(text)
    leaves = []
    def walk(node, parent, key):
        leaves.append((parent, key))
        if isinstance(node, dict):
            for k in list(node): walk(node[k], node, k)
        elif isinstance(node, list):
            for k in range(len(node)): walk(node[k], node, k)
    walk(doc, None, None)
    for _ in range(rng.choice([1, 1, 2])):
        parent, key = rng.choice(leaves[1:])
        try:
            old = parent[key]
        except (KeyError, IndexError):
            continue
        r = rng.random()
        if isinstance(old, int) and not isinstance(old, bool) or r < 0.3:
            new = rng.choice(SPECIAL + [rng.randrange(-5, 30), 1.5, None, True, "3", [], {}])
        elif isinstance(old, str) or r < 0.6:
            new = rng.choice(DTYPES + [None, 1, "cpu", "cuda", "meta:1", "bogus"])
        elif isinstance(old, list):
            new = old[:-1] if rng.random() < 0.5 else old + [rng.choice(SPECIAL[:12])]
        else:
            new = rng.choice([None, [], {}, 0])
        parent[key] = new
    return json.dumps(doc)

def rezip(data, rng, fmt):
    src = zipfile.ZipFile(io.BytesIO(data))
    members = [(i.filename, src.read(i)) for i in src.infolist()]
    pkls = [k for k, (n, _) in enumerate(members) if n.endswith("data.pkl")]
    hdrs = [k for k, (n, _) in enumerate(members) if n.endswith("header.json")]
    r = rng.random()
    k = rng.randrange(len(members))
    if pkls and r < 0.45:
        k = rng.choice(pkls); members[k] = (members[k][0], mutate_pickle(members[k][1], rng))
    elif hdrs and r < 0.65:
        k = hdrs[0]; members[k] = (members[k][0], mutate_json(members[k][1], rng).encode())
    elif r < 0.75:
        n, b = members[k]; members[k] = (n, b[:rng.randrange(len(b) + 1)])
    elif r < 0.82:
        n, b = members[k]; members[k] = (n, b + bytes(rng.randrange(1, 9)))
    elif r < 0.88:
        del members[k]
    elif r < 0.94:
        j = rng.randrange(len(members)); members[k] = (members[k][0], members[j][1])
    else:
        n, b = members[k]; b = bytearray(b)
        for _ in range(rng.randrange(1, 4)):
            if b: b[rng.randrange(len(b))] = rng.randrange(256)
        members[k] = (n, bytes(b))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=rng.choice([zipfile.ZIP_STORED] * 5 + [zipfile.ZIP_DEFLATED])) as z:
        for n, b in members: z.writestr(n, b)
    return out.getvalue()

def flip(data, rng):
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8])):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)

def mutate(fmt, data, rng):
    r = rng.random()
    if r < 0.2:
        return flip(data, rng)
    if r < 0.3:
        return data[:rng.randrange(len(data))]
    if fmt in ("torch-zip", "distml-v1", "distml-v2"):
        return rezip(data, rng, fmt)
    if fmt == "torch-legacy":
        return mutate_pickle(data, rng)  # the legacy format is a sequence of pickles
    size, = struct.unpack("<Q", data[:8])
    header = mutate_json(data[8:8 + size], rng).encode()
    if rng.random() < 0.2:
        return struct.pack("<Q", rng.choice(SPECIAL[3:] + [len(header) + 1, len(header) - 1])) + header + data[8 + size:]
    return struct.pack("<Q", len(header)) + header + data[8 + size:]

def bases():
    """The valid files, by format."""
    by = {}
    for fmt, data in torch_bases() + distml_bases() + st_bases():
        by.setdefault(fmt, []).append(data)
    return by


def jobs(by, seed, worker, workers):
    """This worker's share of the (format, index, bytes, weights_only) loads: the bases, then
    N_PER_FORMAT mutants per format, each from its own seeded RNG (the same file whichever worker
    makes it); every fifth zip file is loaded with weights_only=False too."""
    for fmt, datas in by.items():
        for k in range(-len(datas), N_PER_FORMAT):
            if k % workers != worker:
                continue
            if k < 0:
                data = datas[k]
            else:
                rng = random.Random(f"{seed}/{fmt}/{k}")
                base = rng.choice(datas)
                try:
                    data = mutate(fmt, base, rng)
                except Exception:  # a mutation the base cannot take (a pickle genops cannot parse)
                    data = flip(base, rng)
            yield fmt, k, data, True
            if fmt != "safetensors" and k % 5 == 0:
                yield fmt, k, data, False


# ---- the worker (this file run as a script): loads files from stdin, one JSON line per file ----

def _tensors(obj, out):
    from distml.tensor import Tensor
    if isinstance(obj, Tensor):
        out.append(obj.array)
    elif isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _tensors(key, out)
            _tensors(value, out)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            _tensors(x, out)
    return out


def _pieces(data):
    """The file's bytes and, for a zip, its members' (deflated ones decompressed)."""
    pieces = [data]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            pieces += [archive.read(info) for info in archive.infolist()]
    except Exception:
        pass
    return pieces


def _foreign_element(data, obj):
    """The first element (as hex) of a loaded tensor whose bytes, either byte order, are nowhere in the file."""
    pieces = _pieces(data)
    for array in _tensors(obj, []):
        k = array.dtype.itemsize
        if k < 2 or array.size == 0:  # single bytes prove nothing: every value is likely in the file
            continue
        rows = np.unique(np.ascontiguousarray(array).reshape(-1).view(np.uint8).reshape(-1, k), axis=0)
        for row in rows:
            element = row.tobytes()
            if not any(element in p or element[::-1] in p for p in pieces):
                return f"{array.dtype} element {element.hex()}"
    return None


def _work():
    import distml
    from distml.serialization import CheckpointError
    task = pickle.load(sys.stdin.buffer)
    for j, (fmt, k, data, weights_only) in enumerate(jobs(task["bases"], task["seed"], task["worker"],
                                                        task["workers"])):
        if j < task["skip"]:
            continue
        print(json.dumps({"start": j}), flush=True)
        try:
            obj = distml.load(io.BytesIO(data), map_location="cpu", weights_only=weights_only)
        except CheckpointError:
            result = {"r": "error"}
        except BaseException as error:
            result = {"r": "other", "m": f"{type(error).__name__}: {str(error)[:200]}"}
        else:
            foreign = _foreign_element(data, obj)
            result = {"r": "foreign", "m": foreign} if foreign else {"r": "ok"}
        print(json.dumps({"j": j, "fmt": fmt, "k": k, "weights_only": weights_only, **result}), flush=True)


def _run_workers(by, seed, workers=2):
    """The results of every job, from `workers` subprocesses at a time; a worker that dies marks
    its current file "crash" and a new one goes on after it."""
    import tempfile
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results = []
    pending = [(w, 0) for w in range(workers)]
    while pending:
        procs = []
        for worker, skip in pending:
            out = tempfile.TemporaryFile()  # a file, not a pipe: workers never wait on a reader
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                    stdout=out, env=env, cwd=ROOT)
            proc.stdin.write(pickle.dumps({"bases": by, "seed": seed, "worker": worker, "workers": workers,
                                           "skip": skip}))
            proc.stdin.close()
            procs.append((proc, out, worker))
        pending = []
        for proc, out, worker in procs:
            rc = proc.wait()
            out.seek(0)
            started = finished = None
            for line in out:
                record = json.loads(line)
                if "start" in record:
                    started = record["start"]
                else:
                    finished = record["j"]
                    results.append(record)
            out.close()
            if rc != 0 and started is not None and started != finished:  # it died on this file
                results.append({"r": "crash", "m": f"worker {worker} exit status {rc} on its job {started}"})
                pending.append((worker, started + 1))
            elif rc != 0:
                raise RuntimeError(f"fuzz worker failed with exit status {rc} before loading a file")
    return results


@pytest.mark.timeout(1800)  # about 90 s alone on two cores; several minutes on a busy machine
def test_mutated_checkpoints_load_or_raise_checkpoint_error():
    results = _run_workers(bases(), seed=20261202)
    counts = {}
    for result in results:
        counts.setdefault(result.get("fmt"), {}).setdefault(result["r"], 0)
        counts[result.get("fmt")][result["r"]] += 1
    failures = [f"{r.get('fmt')} file {r.get('k')} weights_only={r.get('weights_only')} {r['r']}: {r.get('m')}"
                for r in results if r["r"] not in ("ok", "error")]
    assert not failures, f"{len(failures)} bad outcomes, e.g.\n" + "\n".join(failures[:10])
    assert all(sum(counts[fmt].values()) >= N_PER_FORMAT for fmt in FORMATS), counts
    for fmt in FORMATS:  # mutants that load, and many that do not
        assert counts[fmt]["ok"] > 50 and counts[fmt]["error"] > 500, counts
    assert all(r["r"] == "ok" for r in results if r["k"] < 0)  # the bases load


if __name__ == "__main__":
    _work()
