"""ParameterList, ParameterDict and nn.Buffer against PyTorch: registration, state_dict keys,
indexing and dict methods, repr, errors."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import distml
from distml import nn


def make_list(lib):
    return lib.nn.ParameterList([lib.nn.Parameter(lib.ones(3, 4)), lib.zeros(2), 5, "a"])


def test_parameter_list_registers_tensors_as_parameters():
    ours, theirs = make_list(distml), make_list(torch)
    assert repr(ours) == repr(theirs).replace("torch.", "distml.")
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0", "1"]
    assert [n for n, _ in ours.named_parameters()] == ["0", "1"]
    assert isinstance(ours[1], nn.Parameter) and ours[1].requires_grad
    assert ours[2] == 5 and ours[-1] == "a" and len(ours) == 4
    assert [type(p).__name__ for p in ours] == ["Parameter", "Parameter", "int", "str"]
    assert "0" not in dir(ours) and "append" in dir(ours)


def test_parameter_list_append_extend_setitem_slice():
    for lib in (distml, torch):
        params = lib.nn.ParameterList()
        assert repr(params) == "ParameterList()"
        params.append(lib.ones(2)).extend([lib.ones(3), lib.ones(1)])
        params += [lib.ones(4)]
        assert [p.shape[0] for p in params] == [2, 3, 1, 4]
        params[1] = lib.zeros(5)
        assert params[1].shape[0] == 5 and isinstance(params[1], lib.nn.Parameter)
        head = params[1:3]
        assert type(head) is lib.nn.ParameterList and [p.shape[0] for p in head] == [5, 1] and head[0] is params[1]
        assert params[::-2][0] is params[3]
        with pytest.raises(IndexError, match="index 4 is out of range"):
            params[4]
        with pytest.raises(IndexError, match="index -5 is out of range"):
            params[-5] = lib.ones(1)
        with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got int"):
            params.extend(3)
        with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got "):
            params.extend(lib.ones(3))
        with pytest.raises(RuntimeError, match="ParameterList should not be called."):
            params(lib.ones(1))


def test_parameter_list_trains_inside_a_module():
    class Scales(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterList([nn.Parameter(distml.full((3,), float(i + 1))) for i in range(3)])

        def forward(self, x):
            for s in self.scales:
                x = x * s
            return x
    model = Scales()
    assert list(model.state_dict()) == ["scales.0", "scales.1", "scales.2"]
    model(distml.ones(3)).sum().backward()
    np.testing.assert_allclose([p.grad.numpy()[0] for p in model.parameters()], [6.0, 3.0, 2.0])
    model.double()
    assert model.scales[0].dtype == distml.float64


def make_dict(lib):
    return lib.nn.ParameterDict({"b": lib.zeros(2), "a": lib.nn.Parameter(lib.ones(1, 2).double()), "c": 3})


def test_parameter_dict_registration_order_repr_and_state_dict():
    ours, theirs = make_dict(distml), make_dict(torch)
    assert repr(ours) == repr(theirs)
    assert list(ours.keys()) == list(theirs.keys()) == ["a", "b", "c"]  # a plain dict is added sorted
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["a", "b"]
    ordered = nn.ParameterDict(OrderedDict([("z", distml.ones(1)), ("y", distml.ones(1))]))
    assert list(ordered) == ["z", "y"] and list(reversed(ordered)) == ["y", "z"]
    pairs = nn.ParameterDict([("q", distml.ones(1)), ("p", distml.ones(2))])
    assert list(pairs.keys()) == ["q", "p"] and isinstance(pairs["p"], nn.Parameter)


def test_parameter_dict_methods_match_torch():
    for lib in (distml, torch):
        d = lib.nn.ParameterDict()
        d["w"] = lib.ones(2)
        d.update({"v": lib.ones(3)})
        assert "w" in d and len(d) == 2 and d.get("missing", 7) == 7
        assert d.setdefault("u", lib.ones(1)) is d["u"]
        assert [k for k, _ in d.items()] == ["w", "v", "u"] and len(list(d.values())) == 3
        key, value = d.popitem()
        assert key == "u" and value.shape == (1,) and "u" not in d
        assert d.pop("w").shape == (2,) and list(d) == ["v"]
        merged = d | lib.nn.ParameterDict({"x": lib.ones(4)})
        assert list(merged) == ["v", "x"] and list(d) == ["v"]
        d |= merged
        assert list(d) == ["v", "x"] and d.copy()["x"] is d["x"]
        assert list(d.fromkeys(["m", "n"])) == ["m", "n"]
        del d["v"]
        assert list(d.state_dict()) == ["x"]
        d.clear()
        assert len(d) == 0 and not list(d.parameters())
        with pytest.raises(TypeError, match="Index given to ParameterDict cannot be used as a key as it is not a "
                                            r"string \(type is 'int'\)"):
            d[1]
        with pytest.raises(TypeError, match="ParametersDict.update should be called with an iterable of key/value "
                                            "pairs, but got int"):
            d.update(3)
        with pytest.raises(ValueError, match="ParameterDict update sequence element #0 has length 3; 2 is required"):
            d.update([("a", lib.ones(1), 1)])
        with pytest.raises(RuntimeError, match="ParameterDict should not be called."):
            d(lib.ones(1))
        with pytest.raises(AttributeError, match="'ParameterDict' object has no attribute 'nothing'"):
            d.pop("nothing")


class Buffered(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.mean = nn.Buffer(distml.zeros(2))
        self.scratch = nn.Buffer(distml.ones(3), persistent=False)


class TorchBuffered(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.mean = torch.nn.Buffer(torch.zeros(2))
        self.scratch = torch.nn.Buffer(torch.ones(3), persistent=False)


def test_buffer_assignment_registers_a_buffer():
    ours, theirs = Buffered(), TorchBuffered()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["mean", "linear.weight", "linear.bias"]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == ["mean", "scratch"]
    assert isinstance(ours.mean, nn.Buffer) and isinstance(ours.mean, distml.Tensor)
    assert not ours.mean.requires_grad and ours.mean.persistent and not ours.scratch.persistent
    ours.mean = distml.full((2,), 3.0)  # a plain tensor replaces a buffer's value, which stays a buffer
    assert ours.state_dict()["mean"].tolist() == [3.0, 3.0]
    ours.double()
    assert ours.mean.dtype == ours.scratch.dtype == distml.float64


def test_buffer_shares_memory_and_keeps_requires_grad():
    t = distml.zeros(3, requires_grad=True)
    b = nn.Buffer(t)
    assert b.requires_grad and b.grad_fn is None
    with distml.no_grad():
        t.add_(1)
    assert b.tolist() == [1.0, 1.0, 1.0]
    assert nn.Buffer().shape == (0,)


def test_buffer_errors_match_torch():
    for lib in (distml, torch):
        class Early(lib.nn.Module):
            def __init__(self):
                self.b = lib.nn.Buffer(lib.zeros(1))
        with pytest.raises(AttributeError, match="cannot assign buffer before Module.__init__"):
            Early()
        module = lib.nn.Linear(2, 2)
        with pytest.raises(TypeError, match="cannot assign '.*Buffer' as parameter 'weight'|cannot assign "
                                            "'torch.FloatTensor' as parameter 'weight'"):
            module.weight = lib.nn.Buffer(lib.zeros(2, 2))
        module.extra = 3
        with pytest.raises(KeyError, match="attribute 'extra' already exists"):
            module.extra = lib.nn.Buffer(lib.zeros(1))


def test_module_with_buffer_and_parameter_list_saves_and_loads(tmp_path):
    model = Buffered()
    model.params = nn.ParameterList([distml.ones(2)])
    path = tmp_path / "model.pt"
    distml.save(model, path)
    loaded = distml.load(path, weights_only=False)
    assert list(loaded.state_dict()) == ["mean", "linear.weight", "linear.bias", "params.0"]
    assert [n for n, _ in loaded.named_buffers()] == ["mean", "scratch"]
    distml.save(model.state_dict(), path)
    assert list(distml.load(path)) == ["mean", "linear.weight", "linear.bias", "params.0"]
