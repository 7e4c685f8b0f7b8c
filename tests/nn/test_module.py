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
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point dtypes"):
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
