"""LSTM and GRU against torch.nn with the same weights (through state_dict): outputs, final states and
the gradients of inputs, initial states and every parameter."""
import numpy as np
import pytest
import torch

import distml
from distml import nn


def flatten(outputs):
    """(output, h_n) or (output, (h_n, c_n)) as a flat list of tensors."""
    output, states = outputs
    return [output, *(states if isinstance(states, tuple) else (states,))]


def compare(dm, tm, arrays, call, dtype=np.float64, rtol=1e-9, atol=1e-11):
    """Load torch's weights into `dm`, run `call(module, *tensors)` on both, backprop random upstream
    gradients through every output, and compare outputs and all gradients."""
    tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32)
    dm.to(distml.float64 if dtype == np.float64 else distml.float32)
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ours = [distml.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    d_out, t_out = flatten(call(dm, *ours)), flatten(call(tm, *theirs))
    rng = np.random.default_rng(1)
    upstream = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in t_out]
    sum((d * distml.tensor(u)).sum() for d, u in zip(d_out, upstream)).backward()
    sum((t * torch.from_numpy(u)).sum() for t, u in zip(t_out, upstream)).backward()
    for d, t in zip(d_out, t_out):
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    for d, t in zip(ours, theirs):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    t_params = dict(tm.named_parameters())
    assert [n for n, _ in dm.named_parameters()] == list(t_params)
    for name, p in dm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


CONFIGS = [dict(), dict(num_layers=2), dict(num_layers=2, batch_first=True), dict(bias=False),
           dict(num_layers=2, bidirectional=True), dict(num_layers=3, bidirectional=True, batch_first=True)]


def config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items()) or "default"


def initial_states(cls, config, batch, rng, hidden=4):
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    shape = (layers, batch, hidden) if batch else (layers, hidden)
    return [rng.standard_normal(shape) for _ in range(2 if cls == "LSTM" else 1)]


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_matches_torch(rng, cls, config, with_state):
    shape = (3, 6, 5) if config.get("batch_first") else (6, 3, 5)
    arrays = [rng.standard_normal(shape)] + (initial_states(cls, config, 3, rng) if with_state else [])

    def call(module, x, *state):
        if not state:
            return module(x)
        return module(x, tuple(state) if cls == "LSTM" else state[0])

    compare(getattr(nn, cls)(5, 4, **config), getattr(torch.nn, cls)(5, 4, **config), arrays, call)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_unbatched_input_and_float32(rng, cls):
    config = dict(num_layers=2, bidirectional=True)
    arrays = [rng.standard_normal((7, 5))] + initial_states(cls, config, None, rng)

    def call(module, x, *state):
        return module(x, tuple(state) if cls == "LSTM" else state[0])

    compare(getattr(nn, cls)(5, 4, **config), getattr(torch.nn, cls)(5, 4, **config), arrays, call)
    compare(getattr(nn, cls)(5, 4, **config), getattr(torch.nn, cls)(5, 4, **config), arrays, call,
            dtype=np.float32, rtol=1e-4, atol=1e-5)


def test_dropout_between_layers_only_in_training(rng):
    lstm = nn.LSTM(5, 4, num_layers=2, dropout=0.5)
    x = distml.tensor(rng.standard_normal((6, 3, 5)).astype(np.float32))
    lstm.eval()
    first, second = lstm(x)[0], lstm(x)[0]
    np.testing.assert_array_equal(first.array, second.array)
    lstm.train()
    distml.manual_seed(0)
    assert not np.allclose(lstm(x)[0].array, first.array)


def test_parameters_and_init_match_torch():
    ours, theirs = nn.GRU(5, 4, num_layers=2, bidirectional=True), torch.nn.GRU(5, 4, num_layers=2, bidirectional=True)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    for p in ours.parameters():
        assert np.abs(p.array).max() <= 0.5 and np.abs(p.array).max() > 0.3  # uniform in +-1/sqrt(4)
    assert repr(nn.LSTM(5, 4, 2, batch_first=True, dropout=0.1, bidirectional=True, bias=False)) == \
        repr(torch.nn.LSTM(5, 4, 2, batch_first=True, dropout=0.1, bidirectional=True, bias=False))


def test_errors():
    lstm, gru = nn.LSTM(5, 4, 2), nn.GRU(5, 4)
    cases = [
        (lambda: lstm(distml.zeros(2, 3, 4, 5)), ValueError, "LSTM: Expected input to be 2D or 3D, got 4D instead"),
        (lambda: lstm(distml.zeros(3, 2, 6)), RuntimeError, "input.size(-1) must be equal to input_size. Expected 5, got 6"),
        (lambda: lstm(distml.zeros(3, 2, 5), (distml.zeros(1, 2, 4), distml.zeros(2, 2, 4))), RuntimeError,
         "Expected hidden[0] size (2, 2, 4), got [1, 2, 4]"),
        (lambda: lstm(distml.zeros(3, 2, 5), (distml.zeros(2, 2, 4), distml.zeros(2, 3, 4))), RuntimeError,
         "Expected hidden[1] size (2, 2, 4), got [2, 3, 4]"),
        (lambda: gru(distml.zeros(3, 2, 5), distml.zeros(2, 2, 4)), RuntimeError,
         "Expected hidden size (1, 2, 4), got [2, 2, 4]"),
        (lambda: nn.GRU(5, 0), ValueError, "hidden_size must be greater than zero"),
        (lambda: nn.GRU(5, 4, num_layers=0), ValueError, "num_layers must be greater than zero"),
        (lambda: nn.GRU(5, 4, dropout=1.5), ValueError,
         "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"),
    ]
    for make, error, message in cases:
        with pytest.raises(error) as raised:
            make()
        assert str(raised.value) == message
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1, but got dropout=0.5"):
        nn.GRU(5, 4, dropout=0.5)
