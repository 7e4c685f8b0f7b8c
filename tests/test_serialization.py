"""distml.save / distml.load: round trips (containers, whole modules, optimizers, any picklable object),
weights_only loading and its allow-list, atomic writes, damaged and crafted files, PyTorch and safetensors files."""
import collections
import dataclasses
import enum
import io
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import distml
import distml.nn as nn
from distml import serialization
from distml.serialization import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_]


def assert_tensor_equal(ours, expected):
    assert isinstance(ours, distml.Tensor)
    expected = expected.detach().numpy() if isinstance(expected, (torch.Tensor, distml.Tensor)) else expected
    assert ours.array.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours.array, expected)


def archive_entries(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def full_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.fixture(autouse=True)
def no_safe_globals_left():
    serialization.clear_safe_globals()
    yield
    serialization.clear_safe_globals()


# ---- classes that tests pickle (module level, so that pickle can find them) ----

class Net(nn.Module):
    """A small CNN: conv, batch norm, pooling, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 10))

    def forward(self, x):
        return self.head(nn.functional.max_pool2d(self.bn(self.conv(x)).relu(), 2))


@dataclasses.dataclass
class Config:
    lr: float
    layers: list
    weight: object = None


class Point(collections.namedtuple("Point", ["x", "y"])):
    pass


class Color(enum.Enum):
    RED = 1


class Box:
    def __init__(self, **contents):
        self.__dict__.update(contents)


class Recorder:
    """Calling an instance writes a file: a crafted pickle must not be able to call it."""

    def __call__(self, path):
        with open(path, "w") as out:
            out.write("called")


class Exploit:
    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        return self.action


class TorchBox:
    def __init__(self, **contents):
        self.__dict__.update(contents)


# ---- version 1: tensors in containers, no pickle ----

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
    assert "distml/data.pkl" not in archive_entries(path)  # plain containers stay in the code-free format
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


@pytest.mark.parametrize("dtype", distml.dtypes.ALL, ids=lambda d: d.name)
def test_every_distml_dtype_round_trips(tmp_path, dtype):
    values = distml.tensor([0, 1, 1]).to(dtype)
    param = nn.Parameter(values.clone(), requires_grad=dtype.is_floating_point)
    for obj in ({"t": values}, {"t": values, "p": param, "set": {1}}):  # version 1 and version 2
        distml.save(obj, tmp_path / "t.pt")
        back = distml.load(tmp_path / "t.pt")
        assert back["t"].dtype is dtype
        np.testing.assert_array_equal(back["t"].array, values.array)
    assert back["p"].dtype is dtype and back["p"].requires_grad == dtype.is_floating_point


def test_reads_version_1_files_as_written_before(tmp_path):
    """A checkpoint written by the distml that had only the JSON format still loads."""
    path = tmp_path / "old.pt"
    header = {"format": "distml", "version": 1,
              "tensors": [{"dtype": "<f4", "shape": [2], "device": "cpu", "requires_grad": True}],
              "object": {"$dict": [["w", {"$tensor": 0}], ["epoch", 3], ["betas", {"$tuple": [0.9, 0.99]}]]}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("distml/tensors/0", np.array([1.5, -2], dtype=np.float32).tobytes())
        archive.writestr("distml/header.json", json.dumps(header))
    back = distml.load(path)
    assert_tensor_equal(back["w"], np.array([1.5, -2], dtype=np.float32))
    assert back["w"].requires_grad and back["epoch"] == 3 and back["betas"] == (0.9, 0.99)


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


# ---- version 2: any picklable object, tensors as raw entries ----

def test_objects_round_trip_with_weights_only_false(tmp_path):
    weight = distml.arange(6.0).reshape(2, 3)
    obj = {
        "set": {1, 2}, "frozenset": frozenset("ab"), "slice": slice(1, None, 2), "complex": 1 - 2j,
        "bytes": b"\x00\xff", "bytearray": bytearray(b"xy"), "device": distml.device("cpu"), "dtype": distml.int8,
        "size": distml.Size([4]), "odict": collections.OrderedDict(b=1, a=2), "counter": collections.Counter("aab"),
        "default": collections.defaultdict(list, k=[1]), "point": Point(1, 2.5), "config": Config(0.1, [3, 4], weight),
        "color": Color.RED, "box": Box(t=weight, n=None), "range": range(3), "np_scalar": np.int16(-7),
        "array": np.arange(4.0),
    }
    distml.save(obj, tmp_path / "obj.pt")
    back = distml.load(tmp_path / "obj.pt", weights_only=False)
    for key in ("set", "frozenset", "slice", "complex", "bytes", "bytearray", "device", "size", "odict", "counter",
                "default", "point", "color", "range", "np_scalar"):
        assert back[key] == obj[key] and type(back[key]) is type(obj[key]), key
    assert back["dtype"] is distml.int8 and back["default"]["new"] == []
    assert back["config"].lr == 0.1 and back["config"].layers == [3, 4] and type(back["config"]) is Config
    assert back["box"].t is back["config"].weight  # one tensor, one entry, one object again
    assert_tensor_equal(back["box"].t, weight)
    np.testing.assert_array_equal(back["array"], obj["array"])


def test_weights_only_loads_default_types(tmp_path):
    """What weights_only=True accepts without an allow-list: what torch.load accepts, plus numpy data and frozenset."""
    p = nn.Parameter(distml.ones(2))
    obj = {"set": {1, (2, "x")}, "frozenset": frozenset([1]), "complex": 3j, "bytes": b"ab",
           "bytearray": bytearray(b"c"), "device": distml.device("cpu"), "dtype": distml.float64,
           "size": distml.Size([2, 3]),
           "odict": collections.OrderedDict(a=p), "counter": collections.Counter("xxy"), "shared": [[1]] * 2,
           "np_scalar": np.float32(2.5), "array": np.arange(3), "grad": distml.ones(2, requires_grad=True) * 2}
    distml.save(obj, tmp_path / "obj.pt")
    back = distml.load(tmp_path / "obj.pt")  # weights_only=True
    for key in ("set", "frozenset", "complex", "bytes", "bytearray", "device", "size", "counter", "shared"):
        assert back[key] == obj[key] and type(back[key]) is type(obj[key]), key
    assert back["dtype"] is distml.float64 and back["shared"][0] is back["shared"][1]
    assert type(back["odict"]["a"]) is nn.Parameter and back["odict"]["a"].requires_grad
    assert type(back["np_scalar"]) is np.float32 and back["np_scalar"] == 2.5
    np.testing.assert_array_equal(back["array"], obj["array"])
    assert back["grad"].requires_grad and back["grad"].is_leaf  # saved as data, like torch
    assert_tensor_equal(back["grad"], obj["grad"].detach())
    assert distml.load(tmp_path / "obj.pt", weights_only=None)["set"] == {1, (2, "x")}  # None means the default


def test_tensor_bytes_are_raw_entries_not_in_the_pickle(tmp_path, rng):
    big = distml.tensor(rng.standard_normal((64, 64)))
    distml.save(Box(big=big, again=big, view=big[:2]), tmp_path / "box.pt")
    entries = archive_entries(tmp_path / "box.pt")
    header = json.loads(entries["distml/header.json"])
    assert header["version"] == 2 and len(header["tensors"]) == 2  # big once, its view as its own copy
    assert len(entries["distml/data.pkl"]) < 500 and big.numpy().tobytes()[:64] not in entries["distml/data.pkl"]
    assert entries["distml/tensors/0"] == big.numpy().tobytes()


def test_tensor_subclasses_other_than_parameter_are_refused(tmp_path):
    class Tagged(distml.Tensor):
        __slots__ = ()

    with pytest.raises(TypeError, match="distml.save cannot store a Tagged: only Tensor, Parameter and Buffer"):
        distml.save({"t": Tagged(np.zeros(2)), "s": {1}}, tmp_path / "t.pt")
    assert not os.listdir(tmp_path)


def test_whole_module_round_trip(tmp_path, rng):
    distml.manual_seed(0)
    model = Net()
    x = distml.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    model(x).sum().backward()  # grads and batch-norm statistics exist; grads are not saved, as in torch
    model.eval()
    distml.save(model, tmp_path / "model.pt")
    back = distml.load(tmp_path / "model.pt", weights_only=False)
    assert type(back) is Net and type(back.head[1]) is nn.Linear and not back.training
    np.testing.assert_array_equal(back(x).detach().numpy(), model(x).detach().numpy())
    for (name, ours), (_, original) in zip(back.named_parameters(), model.named_parameters()):
        assert type(ours) is nn.Parameter and ours.requires_grad and ours.grad is None, name
        assert_tensor_equal(ours.detach(), original.detach())
    assert_tensor_equal(back.bn.running_mean, model.bn.running_mean)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"GLOBAL {full_name(Net)} was not an allowed")):
        distml.load(tmp_path / "model.pt")
    with serialization.safe_globals([Net, nn.Conv2d, nn.BatchNorm2d, nn.Sequential, nn.Flatten, nn.Linear]):
        trusted = distml.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(trusted(x).detach().numpy(), model(x).detach().numpy())


def test_optimizer_round_trip_keeps_parameters_shared(tmp_path, rng):
    distml.manual_seed(0)
    model = Net()
    opt = distml.optim.Adam(model.parameters(), lr=0.01)
    x = distml.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    model(x).sum().backward()
    opt.step()
    distml.save(opt, tmp_path / "opt.pt")
    alone = distml.load(tmp_path / "opt.pt", weights_only=False)
    assert type(alone) is distml.optim.Adam and alone.param_groups[0]["lr"] == 0.01
    first = opt.param_groups[0]["params"][0]
    assert_tensor_equal(alone.state[alone.param_groups[0]["params"][0]]["exp_avg"], opt.state[first]["exp_avg"])

    distml.save({"model": model, "opt": opt}, tmp_path / "both.pt")
    back = distml.load(tmp_path / "both.pt", weights_only=False)
    assert all(a is b for a, b in zip(back["opt"].param_groups[0]["params"], back["model"].parameters()))
    for m, o in ((model, opt), (back["model"], back["opt"])):  # one more identical step on each
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    for ours, original in zip(back["model"].parameters(), model.parameters()):
        np.testing.assert_array_equal(ours.detach().numpy(), original.detach().numpy())


def test_map_location_reaches_every_tensor_inside_objects(tmp_path):
    model = Net()
    distml.save({"model": model, "extra": Box(t=distml.ones(1))}, tmp_path / "m.pt")
    seen = []

    def record(tensor, location):
        seen.append(location)
        return tensor * 2

    back = distml.load(tmp_path / "m.pt", map_location=record, weights_only=False)
    assert seen == ["cpu"] * (len(list(model.parameters())) + len(list(model.buffers())) + 1)  # + the box's
    assert_tensor_equal(back["extra"].t, np.full(1, 2, dtype=np.float32))
    assert back["model"].conv.weight.device == distml.device("cpu")
    assert distml.load(tmp_path / "m.pt", map_location={"cpu": "cpu"}, weights_only=False)["extra"].t.item() == 1
    with pytest.raises(TypeError, match="map_location function must return a Tensor or None, not int"):
        distml.load(tmp_path / "m.pt", map_location=lambda tensor, location: 0, weights_only=False)


# ---- the allow-list ----

def test_custom_class_refused_then_allowed(tmp_path):
    distml.save({"cfg": Config(0.5, [1]), "p": Point(1, 2)}, tmp_path / "c.pt")
    with pytest.raises(pickle.UnpicklingError) as refused:
        distml.load(tmp_path / "c.pt")
    assert isinstance(refused.value, CheckpointError)
    message = str(refused.value)
    assert f"Unsupported global: GLOBAL {full_name(Config)} was not an allowed global by default" in message
    assert f"distml.serialization.add_safe_globals([{full_name(Config)}])" in message
    assert f"distml.serialization.safe_globals([{full_name(Config)}])" in message
    assert "weights_only` set to `False` will likely succeed" in message

    serialization.add_safe_globals([Config, Point])
    assert serialization.get_safe_globals() == [Config, Point]
    back = distml.load(tmp_path / "c.pt")
    assert back["cfg"] == Config(0.5, [1]) and back["p"] == Point(1, 2) and type(back["p"]) is Point
    serialization.clear_safe_globals()
    assert serialization.get_safe_globals() == []
    with pytest.raises(pickle.UnpicklingError, match=re.escape(full_name(Config))):
        distml.load(tmp_path / "c.pt")


def test_safe_globals_under_another_name(tmp_path):
    """`(obj, "module.name")` lets obj stand in for the class a file names."""
    distml.save(Box(a=1), tmp_path / "b.pt")
    with serialization.safe_globals([(TorchBox, full_name(Box))]):
        back = distml.load(tmp_path / "b.pt")
    assert type(back) is TorchBox and back.a == 1


def test_safe_globals_context_manager_restores_the_list(tmp_path):
    distml.save(Config(1.0, []), tmp_path / "c.pt")
    serialization.add_safe_globals([Point])
    with serialization.safe_globals([Config, Point]):
        assert serialization.get_safe_globals() == [Point, Config]
        assert distml.load(tmp_path / "c.pt") == Config(1.0, [])
    assert serialization.get_safe_globals() == [Point]  # Point was there before: it stays
    with pytest.raises(KeyError):
        with serialization.safe_globals([Config]):
            raise KeyError("inside")
    assert serialization.get_safe_globals() == [Point]
    with pytest.raises(pickle.UnpicklingError):
        distml.load(tmp_path / "c.pt")


def test_add_safe_globals_checks_entries():
    with pytest.raises(ValueError, match="Expected tuple of length 2 \\(global, str of callable full path\\), "
                                         "but got tuple of length: 3"):
        serialization.add_safe_globals([(Box, "a.Box", "extra")])
    with pytest.raises(TypeError, match="Expected second item in tuple to be str of callable full path"):
        serialization.add_safe_globals([(Box, Box)])
    with pytest.raises(TypeError, match="safe globals are classes, functions.*got a str"):
        serialization.add_safe_globals(["__main__.Box"])
    assert serialization.get_safe_globals() == []


def test_refusal_message_matches_torch(tmp_path):
    torch.save(TorchBox(w=torch.ones(1)), tmp_path / "torch.pt")
    with pytest.raises(pickle.UnpicklingError) as theirs:
        torch.load(tmp_path / "torch.pt")
    distml.save(TorchBox(w=distml.ones(1)), tmp_path / "distml.pt")
    with pytest.raises(pickle.UnpicklingError) as ours:
        distml.load(tmp_path / "distml.pt")
    for sentence in (r"Unsupported global: GLOBAL .*? if you trust this class/function\.",
                     r"Re-running `torch.load` with .*? from a trusted source\."):
        expected = re.search(sentence, str(theirs.value)).group().replace("torch.", "distml.")
        assert expected in str(ours.value)
    assert str(ours.value).startswith("Weights only load failed.")


def test_distml_serialization_is_torch_serialization():
    import distml as torch_like
    import distml.serialization as module
    assert torch_like.serialization is module
    for name in ("add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals"):
        assert callable(getattr(torch_like.serialization, name))


# ---- no code runs with weights_only=True ----

def test_reduce_exploits_never_run(tmp_path):
    marker = tmp_path / "pwned"
    for action, refused in (((os.system, (f"touch {marker}",)), "GLOBAL posix.system whose module posix is blocked"),
                            ((open, (str(marker), "w")), "GLOBAL io.open was not an allowed global"),
                            ((subprocess.call, (["touch", str(marker)],)), "GLOBAL subprocess.call whose module")):
        distml.save({"w": distml.ones(1), "x": Exploit(action)}, tmp_path / "evil.pt")
        with pytest.raises(pickle.UnpicklingError, match=refused):
            distml.load(tmp_path / "evil.pt")
        assert not marker.exists()
    with serialization.safe_globals([os.system]):  # blocked modules stay blocked
        distml.save(Exploit((os.system, (f"touch {marker}",))), tmp_path / "evil.pt")
        with pytest.raises(pickle.UnpicklingError, match="whose module posix is blocked"):
            distml.load(tmp_path / "evil.pt")
    assert not marker.exists()


def crafted_archive(pickled, tensors=()):
    """A version-2 distml archive around a hand-made pickle (and CPU tensors of the given arrays)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i, array in enumerate(tensors):
            archive.writestr(f"distml/tensors/{i}", array.tobytes())
        records = [{"dtype": a.dtype.str, "shape": list(a.shape), "device": "cpu", "requires_grad": False}
                   for a in tensors]
        archive.writestr("distml/data.pkl", pickled)
        archive.writestr("distml/header.json", json.dumps({"format": "distml", "version": 2, "tensors": records}))
    out.seek(0)
    return out


def short_str(text):
    data = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


def test_allowed_class_instances_cannot_be_called(tmp_path):
    """REDUCE may call an allowed class, not an instance of it: find_class alone would let this run."""
    target = tmp_path / "called"
    pickled = pickle.dumps(Recorder(), protocol=4)[:-1] + short_str(str(target)) + pickle.TUPLE1 + pickle.REDUCE + \
        pickle.STOP

    class FindClassOnly(pickle.Unpickler):
        def find_class(self, module, name):
            assert (module, name) == (Recorder.__module__, "Recorder")
            return Recorder

    FindClassOnly(io.BytesIO(pickled)).load()
    assert target.exists()  # what a find_class-only gate lets through
    target.unlink()
    with serialization.safe_globals([Recorder]):
        with pytest.raises(pickle.UnpicklingError, match="call reduce for unrecognized function a Recorder object"):
            distml.load(crafted_archive(pickled))
    assert not target.exists()


def test_build_cannot_change_distml_singletons():
    """BUILD on the float32 dtype object (which every Tensor shares) is refused."""
    state = pickle.NONE + pickle.EMPTY_DICT + short_str("name") + short_str("hacked") + pickle.SETITEM + pickle.TUPLE2
    pickled = pickle.dumps(distml.float32, protocol=4)[:-1] + state + pickle.BUILD + pickle.STOP
    with pytest.raises(pickle.UnpicklingError, match="Can only build OrderedDict, Counter or types allowlisted via "
                                                     "`add_safe_globals`, but got dtype"):
        distml.load(crafted_archive(pickled))
    assert distml.float32.name == "float32"


def test_items_only_go_into_containers():
    """SETITEM on a Tensor (a persistent id) would run Tensor.__setitem__: refused."""
    pickled = (pickle.PROTO + b"\x04" + pickle.BININT1 + b"\x00" + pickle.BINPERSID + pickle.BININT1 + b"\x00" +
               pickle.BININT1 + b"\x07" + pickle.SETITEM + pickle.STOP)
    with pytest.raises(pickle.UnpicklingError, match="Can only set items of dict, OrderedDict, Counter.*got Tensor"):
        distml.load(crafted_archive(pickled, [np.zeros(2, np.float32)]))
    inst = pickle.MARK + pickle.INST + f"{Box.__module__}\nBox\n".encode() + pickle.STOP  # protocol 0 Box()
    with serialization.safe_globals([Box]):
        with pytest.raises(pickle.UnpicklingError, match="Unsupported pickle opcode"):
            distml.load(crafted_archive(inst))


def run_isolated(script, *args, timeout=120):
    """Run a Python script in a fresh interpreter: a crash or hang there fails the test instead of pytest."""
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


AMPLIFIERS = r"""
import io, sys, zipfile, json, pickle, distml
from distml.serialization import CheckpointError

def archive(body, prefix="distml/"):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        zipped.writestr(prefix + "data.pkl", pickle.PROTO + bytes([4]) + body + pickle.STOP)
        if prefix == "distml/":
            zipped.writestr("distml/header.json", json.dumps({"format": "distml", "version": 2, "tensors": []}))
    out.seek(0)
    return out

def refused(data, message):
    try:
        distml.load(data)
    except CheckpointError as error:
        assert message in str(error), error
    else:
        raise AssertionError(f"loaded what should be refused with {message!r}")

def text(s):
    return pickle.SHORT_BINUNICODE + bytes([len(s)]) + s.encode()

def memo(i, get=False):
    return (pickle.LONG_BINGET if get else pickle.LONG_BINPUT) + i.to_bytes(4, "little")

deep = pickle.EMPTY_TUPLE + pickle.TUPLE1 * 1_000_000          # hashing it overflows the C stack
shared = pickle.EMPTY_TUPLE + (pickle.DUP + pickle.TUPLE2) * 100  # hashing it visits 2**100 tuples
bodies = [lambda key: pickle.EMPTY_DICT + key + pickle.NONE + pickle.SETITEM,
          lambda key: pickle.MARK + key + pickle.NONE + pickle.DICT,
          lambda key: pickle.EMPTY_SET + pickle.MARK + key + pickle.ADDITEMS,
          lambda key: pickle.MARK + key + pickle.FROZENSET]
refused(archive(bodies[0](deep)), "nested deeper than 100")
for body in bodies:
    for prefix in ("distml/", "archive/"):  # distml's format and PyTorch's
        refused(archive(body(pickle.EMPTY_TUPLE + pickle.TUPLE1 * 1000), prefix), "nested deeper than 100")
        refused(archive(body(shared), prefix), "far more work than its size accounts for")

# distml.Size(...) called 20000 times on one memoized 50000-element list
big_list = pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + bytes([1]) + pickle.DUP * 50_000 + pickle.APPENDS
size = text("distml.tensor") + text("Size") + pickle.STACK_GLOBAL
again = memo(1, get=True) + memo(0, get=True) + pickle.TUPLE1 + pickle.REDUCE + pickle.POP
refused(archive(big_list + memo(0) + pickle.POP + size + memo(1) + pickle.POP + again * 20_000 + pickle.NONE),
        "far more work than its size accounts for")

# one torch storage rebuilt into 40 tensors
refused(open(sys.argv[1], "rb"), "far more than the 65536 its storages hold")
print("refused")
"""


def test_small_files_cannot_make_loading_crash_or_take_forever(tmp_path):
    """Hash bombs (deep and shared tuple keys), calls repeated on a large memoized list, and one torch storage
    rebuilt into many tensors are refused quickly, in a fresh interpreter so that a crash or hang fails the test."""
    storage = torch.zeros(2 ** 16)
    torch.save([storage[:] for _ in range(40)], tmp_path / "views.pt")
    assert len(distml.load(tmp_path / "views.pt", weights_only=False)) == 40  # trusted: loads
    assert run_isolated(AMPLIFIERS, tmp_path / "views.pt").strip() == "refused"


FUZZ = r"""
import io, os, random, sys, zipfile
import distml
from distml.serialization import CheckpointError

seeds = [open(os.path.join(sys.argv[1], name), "rb").read() for name in sorted(os.listdir(sys.argv[1]))]
rng = random.Random(0)
OPCODES = bytes(range(0x80)) + bytes(range(0x80, 0x98))

def mutate(data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(4)
        if kind == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = bytes(rng.choice(OPCODES) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del data[at:at + rng.randint(1, 16)]
        else:
            start = rng.randrange(len(data) + 1)
            data[at:at] = data[start:start + rng.randint(1, 32)]
    return bytes(data)

def with_entry_mutated(data):
    # the archive rewritten with one entry changed, so that its CRC still holds and the damage reaches the reader
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    target = rng.choice(sorted(entries))
    if target.endswith(".pkl") and rng.random() < 0.3:
        entries[target] = entries[target][:2] + bytes(rng.choice(OPCODES) for _ in range(rng.randint(1, 40))) + b"."
    else:
        entries[target] = mutate(entries[target])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
    return out.getvalue()

outcomes = {}
for i in range(int(sys.argv[2])):
    kind = i % 4
    if kind == 0:
        sample = rng.choice([b"PK\x03\x04", b"\x80\x02", (20).to_bytes(8, "little") + b"{", b""]) + \
            bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    elif kind == 1:
        sample = mutate(rng.choice(seeds))
    else:
        seed = rng.choice([s for s in seeds if s[:2] == b"PK"])
        sample = with_entry_mutated(seed)
    try:
        distml.load(io.BytesIO(sample))
        outcome = "loaded"
    except CheckpointError as error:
        outcome = type(error).__name__
    except RuntimeError as error:
        assert "Attempting to deserialize object on a CUDA device" in str(error), (repr(sample), error)
        outcome = "cuda"
    except BaseException as error:
        raise AssertionError(f"{type(error).__name__}: {error} on {sample!r}")
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
print(outcomes)
"""


def test_fuzzed_files_only_raise_checkpoint_errors(tmp_path):
    """Random bytes, damaged archives and archives with damaged entries (valid CRC), loaded with weights_only=True:
    each either loads or raises CheckpointError (or its UnpicklingError); nothing crashes, hangs or runs."""
    seeds, marker = tmp_path / "seeds", tmp_path / "pwned"
    seeds.mkdir()
    distml.save({"w": distml.arange(6.0).reshape(2, 3), "n": [1, 2.5, "x"], "s": distml.Size([2])},
                seeds / "v1.pt")
    distml.save({"p": nn.Parameter(distml.ones(2)), "set": {1, (2, 3)}, "c": 1j, "b": b"x",
                 "od": collections.OrderedDict(a=distml.zeros(1)), "dev": distml.device("cpu"), "dt": distml.int8,
                 "np": np.arange(3), "sc": np.float32(1)}, seeds / "v2.pt")
    distml.save([Exploit((os.system, (f"touch {marker}",))), Exploit((open, (str(marker), "w")))], seeds / "evil.pt")
    param = torch.nn.Parameter(torch.randn(2, 3))
    torch.save({"w": param, "t": param.detach().t(), "meta": {"size": torch.Size([2]), "dev": torch.device("cpu"),
                                                              "dt": torch.float16, "b": b"y", "s": {1}}},
               seeds / "torch.pt")
    from safetensors.torch import save_file
    save_file({"a": torch.randn(3), "b": torch.arange(4)}, str(seeds / "m.safetensors"))
    outcomes = run_isolated(FUZZ, seeds, 4000)
    assert "UnpicklingError" in outcomes and "CheckpointError" in outcomes
    assert not marker.exists()


# ---- atomic writes and damaged files ----

def test_crash_mid_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    distml.save({"epoch": 1, "w": distml.zeros(1000)}, path)

    def crashing(out, *args):
        out.write(b"PK\x03\x04 half of an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write_archive", crashing)
    for obj in ({"epoch": 2, "w": distml.ones(1000)}, Box(epoch=2)):  # either format
        with pytest.raises(KeyboardInterrupt):
            distml.save(obj, path)
    monkeypatch.undo()
    assert distml.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the temporary file is gone too


def test_unpicklable_object_leaves_old_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    distml.save({"epoch": 1}, path)
    with pytest.raises(Exception) as theirs:
        torch.save({"f": lambda x: x}, io.BytesIO())
    with pytest.raises(type(theirs.value), match="lambda"):
        distml.save({"epoch": 2, "f": lambda x: x}, path)
    assert distml.load(path)["epoch"] == 1 and os.listdir(tmp_path) == ["ckpt.pt"]


def test_killed_mid_save_keeps_old_file(tmp_path):
    """A process killed (SIGKILL) half-way through writing leaves the previous checkpoint readable."""
    path = tmp_path / "ckpt.pt"
    distml.save({"epoch": 1}, path)
    script = f"""
import os, signal, distml
from distml import serialization
def dying(out, *args):
    out.write(b"PK\\x03\\x04" + bytes(100000))
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
serialization._write_archive = dying
distml.save({{"epoch": 2, "w": distml.ones(100000)}}, {str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert result.returncode == -signal.SIGKILL
    assert distml.load(path)["epoch"] == 1


def test_missing_file_and_directory_errors_match_torch(tmp_path):
    missing = str(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError) as theirs:
        torch.load(missing)
    with pytest.raises(FileNotFoundError) as ours:
        distml.load(missing)
    assert str(ours.value) == str(theirs.value)
    target = str(tmp_path / "no_such_dir" / "x.pt")
    with pytest.raises(RuntimeError) as theirs:
        torch.save({}, target)
    with pytest.raises(RuntimeError) as ours:
        distml.save({}, target)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("obj", [{"w": distml.arange(1000)}, Box(w=distml.arange(1000))], ids=["v1", "v2"])
def test_truncated_file_raises(tmp_path, obj):
    path = tmp_path / "ckpt.pt"
    distml.save(obj, path)
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


def test_corrupt_pickle_raises_unpickling_error():
    with pytest.raises(pickle.UnpicklingError, match="is corrupt: cannot unpickle distml/data.pkl"):
        distml.load(crafted_archive(b"\x80\x04K"))  # no STOP
    with pytest.raises(CheckpointError, match="persistent id 3 is not a tensor index below 0"):
        distml.load(crafted_archive(b"\x80\x04K\x03Q."))


def test_newer_format_version_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "new.pt", "w") as archive:
        archive.writestr("distml/header.json", json.dumps({"format": "distml", "version": 3, "tensors": []}))
    with pytest.raises(CheckpointError, match="written by a newer distml \\(format version 3; this one reads up to 2"):
        distml.load(tmp_path / "new.pt")


def test_checkpoint_errors_are_runtime_errors():
    assert issubclass(CheckpointError, RuntimeError)
    assert issubclass(serialization.UnpicklingError, CheckpointError)
    assert issubclass(serialization.UnpicklingError, pickle.UnpicklingError)


# ---- PyTorch checkpoints ----

def test_reads_torch_save(tmp_path):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3))
    state = collections.OrderedDict(
        weight=torch.randn(4, 3), long=torch.arange(5), half=torch.randn(2).half(), flags=torch.tensor([True, False]),
        transposed=torch.randn(3, 4).t(), sliced=torch.arange(10.0)[2:8:2], scalar=torch.tensor(2.5, dtype=torch.float64),
        bf16=torch.tensor([1.5, -2.25], dtype=torch.bfloat16), param=p, empty=torch.zeros(0, 3),
        meta={"epoch": 3, "name": "run", "shape": torch.Size([2, 3]), "list": [1, None, (2.0, "x")],
              "device": torch.device("cpu"), "dtype": torch.int16, "bytes": b"\x00a", "set": {1, 2}})
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.sum().backward()
    opt.step()
    state["optimizer"] = opt.state_dict()
    torch.save(state, tmp_path / "torch.pt")
    back = distml.load(tmp_path / "torch.pt")
    assert list(back) == list(state) and isinstance(back, collections.OrderedDict)
    for name in ("weight", "long", "half", "flags", "transposed", "sliced", "scalar", "empty"):
        assert_tensor_equal(back[name], state[name])
    assert back["bf16"].dtype is distml.bfloat16
    np.testing.assert_array_equal(back["bf16"].float().numpy(), np.array([1.5, -2.25], dtype=np.float32))
    assert type(back["param"]) is nn.Parameter and back["param"].requires_grad
    np.testing.assert_array_equal(back["param"].array, p.detach().numpy())
    assert back["meta"] == {"epoch": 3, "name": "run", "shape": (2, 3), "list": [1, None, (2.0, "x")],
                            "device": distml.device("cpu"), "dtype": distml.int16, "bytes": b"\x00a", "set": {1, 2}}
    assert isinstance(back["meta"]["shape"], distml.Size) and back["meta"]["dtype"] is distml.int16
    assert_tensor_equal(back["optimizer"]["state"][0]["momentum_buffer"], opt.state[p]["momentum_buffer"])
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.1


def test_reads_torch_saved_objects_of_non_torch_classes(tmp_path):
    torch.save(TorchBox(w=torch.arange(3.0), n=[1]), tmp_path / "box.pt")
    seen = []
    back = distml.load(tmp_path / "box.pt", weights_only=False, map_location=lambda t, loc: seen.append(loc))
    assert type(back) is TorchBox and back.n == [1] and seen == ["cpu"]
    assert_tensor_equal(back.w, np.arange(3.0, dtype=np.float32))
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"GLOBAL {full_name(TorchBox)} was not an allowed")):
        distml.load(tmp_path / "box.pt")
    with serialization.safe_globals([TorchBox]):
        assert_tensor_equal(distml.load(tmp_path / "box.pt").w, np.arange(3.0, dtype=np.float32))


def whole_model(lib):
    return lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.PReLU(), lib.nn.Hardswish(), lib.nn.Dropout(0.2),
                             lib.nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, batch_first=True),
                             lib.nn.Softmax(dim=-1))


def model_classes(lib):
    """What a pickle of whole_model names, for safe_globals (with `import distml as torch` the same code)."""
    nn = lib.nn
    return [nn.Sequential, nn.Linear, nn.PReLU, nn.Hardswish, nn.Dropout, nn.TransformerEncoderLayer,
            nn.MultiheadAttention, nn.modules.linear.NonDynamicallyQuantizableLinear, nn.LayerNorm, nn.Softmax,
            nn.functional.relu]


def test_whole_torch_model_loads_as_the_distml_modules_of_the_same_path(tmp_path, rng):
    """torch.save(model): as torch.load does, a weights_only load refuses the model's classes until they
    are allowlisted; here the allowed classes are distml's at the same torch.nn.modules path (what
    `torch.nn.Linear` is after `import distml as torch`). weights_only=False rebuilds them without a list."""
    theirs = whole_model(torch).double().eval()
    torch.save(theirs, tmp_path / "model.pt")
    x = rng.standard_normal((2, 5, 4))
    expected = theirs(torch.tensor(x)).detach().numpy()
    for lib, load in ((torch, torch.load), (distml, distml.load)):
        with pytest.raises(pickle.UnpicklingError,
                           match="GLOBAL torch.nn.modules.container.Sequential was not an allowed global by default"):
            load(tmp_path / "model.pt")
        with lib.serialization.safe_globals(model_classes(lib)[:-1]):
            with pytest.raises(pickle.UnpicklingError, match="GLOBAL torch.nn.functional.relu was not an allowed"):
                load(tmp_path / "model.pt")
        with lib.serialization.safe_globals(model_classes(lib)):
            ours = load(tmp_path / "model.pt")
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(lib.tensor(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    ours = distml.load(tmp_path / "model.pt", weights_only=False)
    assert type(ours[4].self_attn.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert not ours.training and ours[1].weight.requires_grad
    np.testing.assert_allclose(ours(distml.tensor(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    ours.train()(distml.tensor(x)).sum().backward()
    assert ours[0].weight.grad is not None


def test_other_torch_classes_are_never_unpickled(tmp_path):
    torch.save(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1), tmp_path / "sgd.pt")
    with pytest.raises(pickle.UnpicklingError, match="GLOBAL torch.optim.sgd.SGD was not an allowed"):
        distml.load(tmp_path / "sgd.pt")
    with pytest.raises(CheckpointError, match="distml cannot rebuild torch.optim.sgd.SGD from a PyTorch "
                                              "checkpoint.*state_dict"):
        distml.load(tmp_path / "sgd.pt", weights_only=False)


def test_torch_reader_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2)}, tmp_path / "good.pt")
    with zipfile.ZipFile(tmp_path / "good.pt") as good, zipfile.ZipFile(tmp_path / "evil.pt", "w") as evil:
        for name in good.namelist():
            data = good.read(name)
            if name.endswith("data.pkl"):
                data = pickle.dumps({"w": Exploit((os.system, (f"touch {marker}",)))}, protocol=2)
            evil.writestr(name, data)
    with pytest.raises(pickle.UnpicklingError, match="GLOBAL posix.system whose module posix is blocked"):
        distml.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_torch_storage_views_are_bounds_checked(tmp_path):
    """A crafted size or stride reaching past its storage is an error, not a read of stray memory."""
    torch.save(torch.arange(4.0), tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "t.pt") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    assert b"K\x04\x85" in entries[name]  # the size (4,) as BININT1 4, TUPLE1
    entries[name] = entries[name].replace(b"K\x04\x85", b"J\x00\x00\x00\x01\x85", 1)  # size (2**24,)
    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    with pytest.raises(pickle.UnpicklingError, match="reaching element 16777215 of a storage of 4 elements"):
        distml.load(tmp_path / "bad.pt")


def test_reads_legacy_torch_files(tmp_path):
    """torch's format before 1.6 (`_use_new_zipfile_serialization=False`): views, parameters, dtypes."""
    a = torch.arange(24.0).reshape(4, 6)
    obj = {"w": a, "t": a.t(), "s": a[1:, 2:5], "p": torch.nn.Parameter(torch.ones(2)), "l": torch.arange(5) * 1001,
           "b": torch.tensor([1.5, -2.0], dtype=torch.bfloat16), "m": torch.tensor([True, False]),
           "z": torch.zeros(0, 3), "k": torch.tensor(2.5, dtype=torch.float64), "n": [1, "x", (2.5, None)],
           "lin": torch.nn.Linear(3, 2).state_dict()}
    torch.save(obj, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for weights_only in (True, False):
        expected = torch.load(tmp_path / "old.pt", weights_only=weights_only)
        back = distml.load(tmp_path / "old.pt", weights_only=weights_only)
        assert back.keys() == expected.keys() and back["n"] == expected["n"]
        for key in ("w", "t", "s", "l", "m", "z", "k", "p"):
            assert_tensor_equal(back[key], expected[key].detach())
        assert type(back["p"]) is nn.Parameter and back["p"].requires_grad
        assert back["b"].dtype is distml.bfloat16 and back["b"].tolist() == [1.5, -2.0]
        assert list(back["lin"]) == ["weight", "bias"]
        assert_tensor_equal(back["lin"]["weight"], expected["lin"]["weight"])
    back["w"].add_(1)  # the tensors own their values: the view "t" was copied out of the storage
    assert back["t"][0, 0].item() == 0.0


def test_legacy_torch_files_damaged_or_crafted(tmp_path):
    torch.save({"w": torch.arange(1000.0)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "old.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        distml.load(tmp_path / "cut.pt")
    # a storage id claiming 2**40 elements: refused before anything that large is allocated
    crafted = data.replace(pickle.dumps(1000, 2)[2:-1], pickle.dumps(2 ** 40, 2)[2:-1], 1)
    assert crafted != data
    (tmp_path / "huge.pt").write_bytes(crafted)
    with pytest.raises(CheckpointError, match="its storages need more bytes than the file has"):
        distml.load(tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match="unreadable magic number"):
        distml.load(io.BytesIO(b"\x80\x02K"))
    with pytest.raises(CheckpointError, match="wrong magic number"):
        distml.load(io.BytesIO(pickle.dumps(12345, 2) + data[len(pickle.dumps(12345, 2)):]))


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
    assert back["c"].dtype is distml.bfloat16 and back["c"].tolist() == [1.0, -0.5]
    data = (tmp_path / "m.safetensors").read_bytes()
    from_bytes = distml.load(io.BytesIO(data))  # a file object: parsed from its bytes by the same library
    assert list(from_bytes) == list(back)
    for name in back:
        assert from_bytes[name].dtype is back[name].dtype
        np.testing.assert_array_equal(from_bytes[name].float().numpy(), back[name].float().numpy())
    back["a"].add_(1)  # writable arrays, not views of the file
    from_bytes["b"].mul_(2)
    (tmp_path / "cut.safetensors").write_bytes(data[:-8])
    for source in (tmp_path / "cut.safetensors", io.BytesIO(data[:-8])):
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            distml.load(source)


def test_safetensors_dtypes_distml_lacks_are_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"q": torch.zeros(2, dtype=torch.float8_e4m3fn)}, str(tmp_path / "f8.safetensors"))
    for source in (tmp_path / "f8.safetensors", io.BytesIO((tmp_path / "f8.safetensors").read_bytes())):
        with pytest.raises(CheckpointError, match="tensor 'q' has dtype F8_E4M3, which distml cannot load"):
            distml.load(source)


# ---- a PyTorch-trained model into the matching distml model ----

def test_torch_state_dict_loads_into_distml_model_with_same_outputs(tmp_path, rng):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 3 * 3, 10)).double()
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 10)).double()
    torch.save(theirs.state_dict(), tmp_path / "lenet.pt")
    ours.load_state_dict(distml.load(tmp_path / "lenet.pt"))
    x = rng.standard_normal((2, 1, 8, 8))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(distml.tensor(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_bfloat16_stays_bfloat16_from_torch_and_safetensors_files(tmp_path):
    from safetensors.torch import save_file
    values = torch.tensor([1.5, -2.25, 3e38, 1e-3], dtype=torch.bfloat16)
    torch.save({"w": values}, tmp_path / "t.pt")
    save_file({"w": values}, str(tmp_path / "t.safetensors"))
    for name in ("t.pt", "t.safetensors"):
        back = distml.load(tmp_path / name)["w"]
        assert back.dtype is distml.bfloat16
        np.testing.assert_array_equal(back.float().numpy(), values.float().numpy())


# ---- crafted views, error types, permissions, temporaries ----

class _CraftedView:
    """Pickles (with torch.save) as torch's `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


@pytest.mark.parametrize("offset, size, stride, message", [
    (0, (5,), (1,), "reaching element 4 of a storage of 4 elements"),
    (4, (1,), (1,), "reaching element 4 of a storage of 4 elements"),
    (2, (2, 2), (2, 1), "reaching element 5 of a storage of 4 elements"),
    (0, (2,), (-1,), "with a negative stride"),
    (3, (-2,), (1,), "with a negative size"),
    (-1, (1,), (1,), "negative size or storage offset"),
    (0, (2, 2 ** 62), (2 ** 62, 4), "reaching element"),  # size*stride far past 64 bits
    (2 ** 64, (1,), (1,), "beyond 64 bits"),
    (0, (1,), (2 ** 70,), "beyond 64 bits"),
    (0, (2, 2), (1,), "with 2 sizes and 1 strides"),
    (0, (2.0,), (1,), "not an int"),
    (0, [2], [1], "not tuples"),
])
def test_crafted_torch_views_are_refused(tmp_path, offset, size, stride, message):
    """Sizes, strides and offsets from a file are checked against the storage before any view is made."""
    storage = torch.arange(4.0).storage()
    torch.save({"x": _CraftedView(storage, offset, size, stride)}, tmp_path / "crafted.pt")
    for weights_only in (True, False):
        with pytest.raises(pickle.UnpicklingError, match=re.escape(message)) as caught:
            distml.load(tmp_path / "crafted.pt", weights_only=weights_only)
        assert isinstance(caught.value, CheckpointError)


def test_crafted_torch_views_inside_the_storage_load_like_torch(tmp_path):
    storage = torch.arange(12.0, dtype=torch.float64).storage()
    views = {"a": _CraftedView(storage, 1, (3, 2), (4, 1)), "b": _CraftedView(storage, 11, (1, 1), (2 ** 40, 1)),
             "c": _CraftedView(storage, 5, (0, 7), (1, 1)), "d": _CraftedView(storage, 0, (2, 3), (0, 4))}
    torch.save(views, tmp_path / "views.pt")
    expected = torch.load(tmp_path / "views.pt", weights_only=False)
    ours = distml.load(tmp_path / "views.pt")
    for key in views:
        assert_tensor_equal(ours[key], expected[key])


def test_read_failures_are_checkpoint_errors_with_the_cause(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "t.pt") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    entries[name] = entries[name][:-3]  # cut off: EOFError or a truncated-pickle error inside pickle
    with zipfile.ZipFile(tmp_path / "cut.pt", "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    for weights_only in (True, False):
        with pytest.raises(CheckpointError) as caught:
            distml.load(tmp_path / "cut.pt", weights_only=weights_only)
        assert isinstance(caught.value, pickle.UnpicklingError) and caught.value.__cause__ is not None
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 4) + b'{"\xff"')  # not UTF-8
    from safetensors import SafetensorError
    for source in (tmp_path / "bad.safetensors", io.BytesIO((tmp_path / "bad.safetensors").read_bytes())):
        with pytest.raises(CheckpointError, match="invalid UTF-8 in header") as caught:
            distml.load(source)
        assert isinstance(caught.value.__cause__, SafetensorError)  # the safetensors library's parser found it


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_saved_files_follow_the_umask_like_torch(tmp_path, umask):
    old = os.umask(umask)
    try:
        distml.save({"w": distml.ones(2)}, tmp_path / "ours.pt")
        torch.save({"w": torch.ones(2)}, tmp_path / "torch.pt")
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "ours.pt").st_mode & 0o777
    assert mode == os.stat(tmp_path / "torch.pt").st_mode & 0o777 == 0o666 & ~umask


def test_save_removes_temporaries_of_dead_writers_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".model.pt.distml-{dead.pid}-0123456789abcdef.tmp"
    live = tmp_path / f".other.pt.distml-{os.getpid()}-0123456789abcdef.tmp"  # a save in progress
    unrelated = tmp_path / f".model.pt.{dead.pid}.tmp"  # not named by distml
    for path in (orphan, live, unrelated):
        path.write_bytes(b"x" * 1000)
    distml.save({"w": distml.ones(2)}, tmp_path / "new.pt")
    assert not orphan.exists() and live.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name, "new.pt"])


def test_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    """A writer killed mid-save (here: stopped inside the write, then SIGKILLed) leaves its temporary."""
    script = ("import os, signal, sys, distml, distml.serialization as s\n"
              "real = s._write_archive\n"
              "def stop(out, *args):\n"
              "    out.write(b'partial'); out.flush(); print('writing', flush=True); signal.pause()\n"
              "s._write_archive = stop\n"
              f"distml.save({{'w': distml.ones(3)}}, {str(tmp_path / 'ckpt.pt')!r})\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd(),
                              env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert writer.stdout.readline() == b"writing\n"
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and re.fullmatch(rf"\.ckpt\.pt\.distml-{writer.pid}-[0-9a-f]{{16}}\.tmp", left[0])
    distml.save({"w": distml.ones(3)}, tmp_path / "ckpt.pt")  # the writer is alive: its temporary stays
    assert len(list(tmp_path.iterdir())) == 2
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    distml.save({"w": distml.zeros(3)}, tmp_path / "ckpt.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    np.testing.assert_array_equal(distml.load(tmp_path / "ckpt.pt")["w"].numpy(), np.zeros(3))


def test_a_flipped_tensor_byte_is_an_error(tmp_path):
    """The zip entry's CRC-32 is each tensor's checksum."""
    distml.save({"w": distml.tensor(np.arange(64.0))}, tmp_path / "w.pt")
    data = bytearray((tmp_path / "w.pt").read_bytes())
    at = data.index(np.arange(64.0)[10:12].tobytes())
    data[at] ^= 0x40
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="distml/tensors/0"):
        distml.load(tmp_path / "flipped.pt")


@pytest.mark.parametrize("writer", ["distml", "torch", "torch-legacy", "safetensors"])
def test_loading_holds_the_tensor_bytes_about_once(tmp_path, writer):
    import tracemalloc
    arrays = {f"w{i}": np.random.default_rng(i).random(1_000_000, dtype=np.float32) for i in range(4)}
    nbytes = sum(a.nbytes for a in arrays.values())
    if writer == "distml":
        distml.save({k: distml.tensor(a) for k, a in arrays.items()}, tmp_path / "m.pt")
    elif writer.startswith("torch"):
        torch.save({k: torch.from_numpy(a) for k, a in arrays.items()}, tmp_path / "m.pt",
                   _use_new_zipfile_serialization=writer == "torch")
    else:
        from safetensors.numpy import save_file
        save_file(arrays, str(tmp_path / "m.pt"))
    tracemalloc.start()
    try:
        back = distml.load(tmp_path / "m.pt")
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.2 * nbytes and current < 1.1 * nbytes
    for k, a in arrays.items():
        np.testing.assert_array_equal(back[k].numpy(), a)
