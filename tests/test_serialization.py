"""distml.save / distml.load: round trips, atomic writes, damaged files, PyTorch and safetensors files."""
import collections
import io
import os
import pickle
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import distml
from distml.serialization import CheckpointError

ALL_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_]


def assert_tensor_equal(ours, expected):
    assert isinstance(ours, distml.Tensor)
    expected = expected.detach().numpy() if isinstance(expected, (torch.Tensor, distml.Tensor)) else expected
    assert ours.array.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours.array, expected)


def test_round_trip_nested_structure(tmp_path, rng):
    shared = distml.tensor(rng.standard_normal(3))
    obj = {
        "model": collections.OrderedDict(weight=distml.tensor(rng.standard_normal((4, 3)).astype(np.float32)),
                                         bias=distml.zeros(4)),
        "tensors": [distml.tensor(rng.integers(0, 5, (2, 2)).astype(d)) for d in ALL_DTYPES],
        "scalar": distml.tensor(3.5), "empty": distml.zeros(0, 3), "transposed": distml.arange(6).reshape(2, 3).T,
        "same": [shared, shared], "numbers": (1, 2.5, -3, True, None, float("inf"), 2 ** 70),
        "strings": ["a", "β"], 7: "int key", (1, 2): "tuple key", "size": distml.Size([2, 3]),
        "dtype": distml.float16, "array": np.arange(5, dtype=np.int32), "np_scalar": np.float32(1.5),
    }
    path = tmp_path / "ckpt.pt"
    distml.save(obj, path)
    back = distml.load(path)
    assert list(back) == list(obj)
    assert isinstance(back["model"], collections.OrderedDict) and type(back) is dict
    for name in ("weight", "bias"):
        assert_tensor_equal(back["model"][name], obj["model"][name].numpy())
    for ours, original in zip(back["tensors"], obj["tensors"]):
        assert_tensor_equal(ours, original.numpy())
    for name in ("scalar", "empty", "transposed"):
        assert_tensor_equal(back[name], obj[name].numpy())
    assert back["same"][0] is back["same"][1]
    assert back["numbers"] == obj["numbers"] and isinstance(back["numbers"], tuple)
    assert back["strings"] == ["a", "β"] and back[7] == "int key" and back[(1, 2)] == "tuple key"
    assert back["size"] == (2, 3) and isinstance(back["size"], distml.Size) and back["dtype"] is distml.float16
    np.testing.assert_array_equal(back["array"], obj["array"])
    assert back["np_scalar"] == 1.5


def test_file_objects_and_requires_grad(tmp_path):
    w = distml.ones(2, requires_grad=True)
    buffer = io.BytesIO()
    distml.save({"w": w}, buffer)
    buffer.seek(0)
    back = distml.load(buffer)["w"]
    assert back.requires_grad and back.is_leaf
    distml.save([w.detach()], str(tmp_path / "a.pt"))
    assert not distml.load(str(tmp_path / "a.pt"))[0].requires_grad


def test_optimizer_state_dict_round_trip(tmp_path):
    w = distml.ones(3, requires_grad=True)
    opt = distml.optim.SGD([w], lr=0.1, momentum=0.9)
    (w * w).sum().backward()
    opt.step()
    state = opt.state_dict()
    distml.save(state, tmp_path / "opt.pt")
    back = distml.load(tmp_path / "opt.pt")
    assert back["param_groups"] == state["param_groups"]
    fresh = distml.optim.SGD([distml.ones(3, requires_grad=True)], lr=0.5, momentum=0.9)
    fresh.load_state_dict(back)
    assert fresh.param_groups[0]["lr"] == 0.1


def test_map_location(tmp_path):
    distml.save({"x": distml.ones(2)}, tmp_path / "x.pt")
    assert distml.load(tmp_path / "x.pt", map_location="cpu")["x"].device == distml.device("cpu")
    assert distml.load(tmp_path / "x.pt", map_location={"cpu": "cpu"})["x"].device == distml.device("cpu")
    if distml._backend.cupy is None:
        with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device but CUDA is not "
                                               "available.*map_location='cpu'"):
            distml.load(tmp_path / "x.pt", map_location="cuda")


def test_unsupported_objects_refused(tmp_path):
    with pytest.raises(TypeError, match="distml.save can store tensors.*got an object of type set"):
        distml.save({1, 2}, tmp_path / "s.pt")
    assert not os.listdir(tmp_path)


# ---- atomic writes and damaged files ----

def test_crash_mid_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    distml.save({"epoch": 1, "w": distml.zeros(1000)}, path)
    from distml import serialization

    original = serialization._write_archive

    def crashing(out, structure, tensors):
        out.write(b"PK\x03\x04 half of an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write_archive", crashing)
    with pytest.raises(KeyboardInterrupt):
        distml.save({"epoch": 2, "w": distml.ones(1000)}, path)
    monkeypatch.setattr(serialization, "_write_archive", original)
    assert distml.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the temporary file is gone too


def test_killed_mid_save_keeps_old_file(tmp_path):
    """A process killed (SIGKILL) half-way through writing leaves the previous checkpoint readable."""
    path = tmp_path / "ckpt.pt"
    distml.save({"epoch": 1}, path)
    script = f"""
import os, signal, distml
from distml import serialization
write = serialization._write_archive
def dying(out, structure, tensors):
    out.write(b"PK\\x03\\x04" + bytes(100000))
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
serialization._write_archive = dying
distml.save({{"epoch": 2, "w": distml.ones(100000)}}, {str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == -signal.SIGKILL
    assert distml.load(path)["epoch"] == 1


def test_truncated_file_raises(tmp_path):
    path = tmp_path / "ckpt.pt"
    distml.save({"w": distml.arange(1000)}, path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"{path}.*truncated or corrupt"):
            distml.load(path)


def test_corrupt_file_raises(tmp_path):
    path = tmp_path / "ckpt.pt"
    distml.save({"w": distml.arange(1000)}, path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the tensor bytes: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt.*CRC"):
        distml.load(path)
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is not a distml, PyTorch or safetensors checkpoint"):
        distml.load(path)
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match="not a distml, PyTorch or safetensors checkpoint"):
        distml.load(path)


def test_checkpoint_error_is_runtime_error():
    assert issubclass(CheckpointError, RuntimeError)


# ---- PyTorch checkpoints ----

def test_reads_torch_save(tmp_path):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3))
    state = collections.OrderedDict(
        weight=torch.randn(4, 3), long=torch.arange(5), half=torch.randn(2).half(), flags=torch.tensor([True, False]),
        transposed=torch.randn(3, 4).t(), sliced=torch.arange(10.0)[2:8:2], scalar=torch.tensor(2.5, dtype=torch.float64),
        bf16=torch.tensor([1.5, -2.25], dtype=torch.bfloat16), param=p,
        meta={"epoch": 3, "name": "run", "shape": torch.Size([2, 3]), "list": [1, None, (2.0, "x")]})
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.sum().backward()
    opt.step()
    state["optimizer"] = opt.state_dict()
    torch.save(state, tmp_path / "torch.pt")
    back = distml.load(tmp_path / "torch.pt")
    assert list(back) == list(state) and isinstance(back, collections.OrderedDict)
    for name in ("weight", "long", "half", "flags", "transposed", "sliced", "scalar"):
        assert_tensor_equal(back[name], state[name])
    assert_tensor_equal(back["bf16"], np.array([1.5, -2.25], dtype=np.float32))
    assert back["param"].requires_grad
    np.testing.assert_array_equal(back["param"].array, p.detach().numpy())
    assert back["meta"] == {"epoch": 3, "name": "run", "shape": (2, 3), "list": [1, None, (2.0, "x")]}
    assert_tensor_equal(back["optimizer"]["state"][0]["momentum_buffer"], opt.state[p]["momentum_buffer"])
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.1


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_torch_reader_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2)}, tmp_path / "good.pt")
    with zipfile.ZipFile(tmp_path / "good.pt") as good, zipfile.ZipFile(tmp_path / "evil.pt", "w") as evil:
        for name in good.namelist():
            data = good.read(name)
            if name.endswith("data.pkl"):
                data = pickle.dumps({"w": _Exploit(marker)}, protocol=2)
            evil.writestr(name, data)
    with pytest.raises(CheckpointError, match="refusing to load posix.system"):
        distml.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_legacy_torch_format_refused(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy \\(non-zip\\) PyTorch checkpoint"):
        distml.load(tmp_path / "old.pt")


# ---- safetensors ----

def test_reads_safetensors(tmp_path):
    from safetensors.torch import save_file
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(6, dtype=torch.int32).reshape(2, 3),
               "c": torch.tensor([1.0, -0.5], dtype=torch.bfloat16), "d": torch.zeros(0)}
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"format": "pt"})
    back = distml.load(tmp_path / "m.safetensors")
    assert sorted(back) == ["a", "b", "c", "d"]
    for name in ("a", "b", "d"):
        assert_tensor_equal(back[name], tensors[name])
    assert_tensor_equal(back["c"], np.array([1.0, -0.5], dtype=np.float32))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-8])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        distml.load(tmp_path / "cut.safetensors")


# ---- a PyTorch-trained model into the matching distml model ----

def test_torch_state_dict_loads_into_distml_model_with_same_outputs(tmp_path, rng):
    nn = pytest.importorskip("distml.nn")
    if not hasattr(nn, "Conv2d") or not hasattr(nn, "Sequential"):
        pytest.skip("distml.nn layers not available yet")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 3 * 3, 10)).double()
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 10)).double()
    torch.save(theirs.state_dict(), tmp_path / "lenet.pt")
    ours.load_state_dict(distml.load(tmp_path / "lenet.pt"))
    x = rng.standard_normal((2, 1, 8, 8))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(distml.tensor(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)
