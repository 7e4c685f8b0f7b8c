"""Module API: registration, traversal, state_dict round trips and errors, modes, dtype
moves, hooks, and print(model) equal to PyTorch's."""
import copy
import pickle

import numpy as np
import pytest
import torch

import distml
from distml import nn


def make_net(lib=distml):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(1, 4, 3, padding=1)
            self.bn = lib.nn.BatchNorm2d(4)
            self.body = lib.nn.Sequential(lib.nn.Flatten(), lib.nn.Linear(64, 8), lib.nn.ReLU(), lib.nn.Dropout(0.1))
            self.head = lib.nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.body(self.bn(self.conv(x))))
    return Net()


def test_registration_and_traversal():
    net = make_net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in make_net(torch).named_parameters()]
    assert [n for n, _ in net.named_buffers()] == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "body", "head"]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in make_net(torch).named_modules()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert len(list(net.parameters(recurse=False))) == 0
    net.extra = nn.Parameter(distml.zeros(2))
    net.register_buffer("scratch", distml.zeros(1), persistent=False)
    assert "extra" in dict(net.named_parameters()) and "scratch" in dict(net.named_buffers())
    assert "scratch" not in net.state_dict() and "extra" in net.state_dict()
    del net.extra
    assert "extra" not in dict(net.named_parameters())
    net.head = None
    assert "head.weight" not in net.state_dict()
    shared = nn.Linear(2, 2)
    tied = nn.Sequential(shared, shared)
    assert len(list(tied.parameters())) == 2
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter 'weight'"):
        nn.Linear(2, 2).weight = 3
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        nn.Linear(2, 2).register_buffer("weight", distml.zeros(1))
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        nn.Linear(2, 2).nope


def test_state_dict_round_trip_with_torch():
    t_net, net = make_net(torch), make_net()
    result = net.load_state_dict({k: v.numpy() for k, v in t_net.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == [] and repr(result) == "<All keys matched successfully>"
    assert list(net.state_dict()) == list(t_net.state_dict())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), t_net.state_dict()[key].numpy())
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    net.eval(), t_net.eval()
    np.testing.assert_allclose(net(distml.tensor(x)).detach().numpy(), t_net(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    clone = make_net()
    clone.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(clone.head.weight.detach().numpy(), net.head.weight.detach().numpy())
    state = net.state_dict()
    assert state["head.weight"].array is net.head.weight.array and not state["head.weight"].requires_grad


def test_load_state_dict_errors_like_torch():
    state = {k: v.numpy() for k, v in torch.nn.Linear(4, 3).state_dict().items()}
    wrong = {"weight": np.zeros((2, 4), np.float32), "extra": np.zeros(1)}
    messages = {}
    for module, lib in ((nn.Linear(4, 2), distml), (torch.nn.Linear(4, 2), torch)):
        for case in (state, wrong):
            with pytest.raises(RuntimeError) as info:
                module.load_state_dict({k: lib.tensor(v) for k, v in case.items()})
            messages.setdefault(lib.__name__, []).append(str(info.value).replace("torch.Size", "distml.Size"))
    assert messages["distml"] == messages["torch"]
    d_message = messages["distml"][1]
    assert d_message == ('Error(s) in loading state_dict for Linear:\n\tMissing key(s) in state_dict: "bias". \n\t'
                         'Unexpected key(s) in state_dict: "extra". ')
    result = nn.Linear(4, 2).load_state_dict({"weight": np.zeros((2, 4)), "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape "
                                           r"distml.Size\(\[3, 4\]\) from checkpoint, the shape in current model is "
                                           r"distml.Size\(\[2, 4\]\)."):
        nn.Linear(4, 2).load_state_dict(state, strict=False)


def test_repr_matches_torch():
    assert repr(make_net()) == repr(make_net(torch))
    layers = [("Conv1d", (3, 5, 3), {"stride": 2, "dilation": 2, "groups": 1, "bias": False}),
              ("ConvTranspose2d", (4, 2, 3), {"stride": 2, "output_padding": 1, "groups": 2}),
              ("Conv2d", (2, 3, 3), {"padding": "same"}), ("MaxPool2d", (2,), {"ceil_mode": True}),
              ("AvgPool2d", (3, 2, 1), {}), ("AdaptiveAvgPool2d", ((2, 3),), {}), ("LayerNorm", ((4, 5),), {}),
              ("GroupNorm", (2, 4), {}), ("BatchNorm1d", (3,), {"momentum": None, "affine": False}),
              ("Embedding", (10, 3), {"padding_idx": 0}), ("LeakyReLU", (0.2, True), {}), ("ELU", (), {}),
              ("GELU", ("tanh",), {}), ("SiLU", (), {}), ("Softmax", (1,), {}), ("LogSoftmax", (), {}),
              ("Softplus", (2.0,), {}), ("Unflatten", (1, (2, 3)), {}), ("Identity", (), {}), ("Tanh", (), {}),
              ("CrossEntropyLoss", (), {}), ("ReLU", (True,), {})]
    for name, args, kwargs in layers:
        assert repr(getattr(nn, name)(*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs)), name
    assert repr(nn.ModuleDict({"a": nn.Tanh()})) == repr(torch.nn.ModuleDict({"a": torch.nn.Tanh()}))


def test_train_eval_and_requires_grad():
    net = make_net()
    assert net.training and net.body[3].training
    assert net.eval() is net and not net.training and not net.body[3].training
    net.train()
    assert net.bn.training
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_parameter_objects():
    net = make_net()
    weight = net.head.weight
    net.head(distml.randn(2, 8)).sum().backward()
    assert net.double() is net and net.head.weight is weight
    assert weight.dtype == distml.float64 and weight.grad.dtype == distml.float64
    assert net.bn.running_mean.dtype == distml.float64 and net.bn.num_batches_tracked.dtype == distml.int64
    net.to(distml.float32)
    assert weight.dtype == distml.float32
    net.float().cpu()
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        net.to(distml.int32)


def test_zero_grad_apply_hooks():
    layer = nn.Linear(3, 2)
    layer(distml.randn(4, 3)).sum().backward()
    layer.zero_grad(set_to_none=False)
    assert np.all(layer.weight.grad.numpy() == 0)
    layer.zero_grad()
    assert layer.weight.grad is None
    seen = []
    make_net().apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Conv2d"
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out * 2)
    out = layer(distml.ones(1, 3))
    np.testing.assert_allclose(out.detach().numpy(), 2 * layer.bias.detach().numpy()[None], rtol=1e-6)
    assert calls == [(1, 2)]
    pre.remove(), post.remove()
    np.testing.assert_allclose(layer(distml.zeros(1, 3)).detach().numpy(), layer.bias.detach().numpy()[None])
    assert calls == [(1, 2)]


def test_parameter_repr_pickle_and_deepcopy():
    p = nn.Parameter(distml.tensor([1.0, 2.0]))
    assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert not nn.Parameter(distml.zeros(1), requires_grad=False).requires_grad
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, nn.Parameter) and q.requires_grad and q.detach().tolist() == [1.0, 2.0]
    net = copy.deepcopy(make_net())
    assert isinstance(net.head.weight, nn.Parameter)


def test_forward_not_implemented():
    with pytest.raises(NotImplementedError, match='Module \\[Module\\] is missing the required "forward" function'):
        nn.Module()(1)


@pytest.mark.parametrize("cast", ["half", "bfloat16", "double", "float"])
def test_dtype_casts_like_torch(cast):
    ours, theirs = make_net(), make_net(torch)
    assert getattr(ours, cast)() is ours
    getattr(theirs, cast)()
    assert ({k: v.dtype.name for k, v in ours.state_dict().items()}
            == {k: str(v.dtype).replace("torch.", "") for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("dst", ["float64", "torch.HalfTensor", "torch.DoubleTensor"])
def test_type_casts_every_tensor_like_torch(dst):
    ours, theirs = make_net(), make_net(torch)
    weight = ours.head.weight
    assert ours.type(getattr(distml, dst, dst)) is ours and ours.head.weight is weight
    theirs.type(getattr(torch, dst, dst))
    assert ours.bn.num_batches_tracked.dtype.name == str(theirs.bn.num_batches_tracked.dtype).replace("torch.", "")
    assert ({k: v.dtype.name for k, v in ours.state_dict().items()}
            == {k: str(v.dtype).replace("torch.", "") for k, v in theirs.state_dict().items()})


def test_type_to_integers_raises_like_torch():
    for lib in (torch, distml):
        with pytest.raises(RuntimeError, match="data set to a tensor that requires gradients must be floating point "
                                               "or complex dtype"):
            lib.nn.Linear(2, 2).type(lib.int64)


def test_state_dict_metadata_matches_torch():
    ours, theirs = make_net().state_dict(), make_net(torch).state_dict()
    assert dict(ours._metadata) == dict(theirs._metadata)
    assert ours._metadata["bn"] == {"version": 2} and ours._metadata[""] == {"version": 1}


def test_batchnorm_fills_in_num_batches_tracked_like_torch():
    """Without version metadata (a plain dict), a missing num_batches_tracked keeps its value and is not
    reported; with a version-2 state_dict it is missing, as in PyTorch."""
    for lib in (distml, torch):
        source, net = make_net(lib), make_net(lib)
        net.bn.num_batches_tracked.fill_(5)
        plain = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
        result = net.load_state_dict(plain)
        assert result.missing_keys == [] and result.unexpected_keys == [] and "bn.num_batches_tracked" not in plain
        assert int(net.bn.num_batches_tracked) == 5
        versioned = source.state_dict()
        del versioned["bn.num_batches_tracked"]
        assert net.load_state_dict(versioned, strict=False).missing_keys == ["bn.num_batches_tracked"]
        with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "bn.num_batches_tracked"'):
            net.load_state_dict(versioned)
        partial = net.load_state_dict({"head.bias": lib.zeros(3), "nope.x": lib.zeros(1), "head.extra": lib.zeros(1)},
                                      strict=False)
        assert len(partial.missing_keys) == 9 and "bn.num_batches_tracked" not in partial.missing_keys
        assert partial.unexpected_keys == ["nope.x", "head.extra"]  # in module order: the root first


def test_load_state_dict_shared_submodule_and_custom_hook():
    """A module shared under two names loads from both prefixes; a subclass may override
    `_load_from_state_dict` with PyTorch's signature (here: renaming an old key)."""
    def make(lib):
        class Renamed(lib.nn.Linear):
            def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
                if prefix + "w" in state_dict:
                    state_dict[prefix + "weight"] = state_dict.pop(prefix + "w")
                super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        shared = lib.nn.Linear(2, 2)
        return lib.nn.Sequential(shared, shared, Renamed(2, 1))

    for lib in (distml, torch):
        net = make(lib)
        state = {k: v.clone() for k, v in make(lib).state_dict().items()}
        state["2.w"] = state.pop("2.weight")
        assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.bias", "2.w"]
        result = net.load_state_dict(state)
        assert result.missing_keys == [] and result.unexpected_keys == [] and "2.w" in state
        np.testing.assert_array_equal(net[2].weight.detach().numpy(), state["2.w"].numpy())
        np.testing.assert_array_equal(net[0].weight.detach().numpy(), state["1.weight"].numpy())


def test_to_takes_tensor_to_arguments_as_torch():
    for lib in (distml, torch):
        conv = lib.nn.Conv2d(2, 3, 3)
        with pytest.raises(RuntimeError, match="does not accept copy argument"):
            conv.to("cpu", copy=True)
        assert conv.to(memory_format=lib.channels_last) is conv
        assert conv.weight.stride() == (18, 1, 6, 2) and conv.bias.stride() == (1,)
        conv.to("cpu", lib.float64, non_blocking=False)
        assert conv.weight.dtype == lib.float64 and conv.bias.dtype == lib.float64
        conv.to(lib.zeros(1, dtype=lib.float32))
        assert conv.weight.dtype == lib.float32
