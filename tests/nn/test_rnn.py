"""RNN, LSTM (with projections) and GRU against torch.nn with the same weights (through state_dict):
outputs, final states and the gradients of inputs, initial states and every parameter; and the fused
kernel (distml/ops/rnn.py) against a plain numpy reference and against its array-module twin."""
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


# ---- every mode, projections, float32, edge cases ----

MODE_CASES = [("RNN", dict()), ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
              ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
              ("LSTM", dict(num_layers=2, bidirectional=True)), ("LSTM", dict(proj_size=3)),
              ("LSTM", dict(proj_size=2, num_layers=2, bidirectional=True, batch_first=True)),
              ("LSTM", dict(proj_size=2, bias=False))]


def case_id(case):
    return case[0] + "".join(f"-{k}={v}" for k, v in case[1].items())


def mode_arrays(rng, cls, config, batch=3, length=6):
    shape = (batch, length, 5) if config.get("batch_first") else (length, batch, 5)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    features = [config.get("proj_size") or 4, 4] if cls == "LSTM" else [4]
    return [rng.standard_normal(shape)] + [rng.standard_normal((layers, batch, n)) for n in features]


def call_with_state(cls):
    def call(module, x, *state):
        return module(x, tuple(state) if cls == "LSTM" else state[0])
    return call


@pytest.mark.parametrize("case", MODE_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_mode_matches_torch(rng, case, dtype):
    cls, config = case
    tolerance = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    compare(getattr(nn, cls)(5, 4, **config), getattr(torch.nn, cls)(5, 4, **config), mode_arrays(rng, cls, config),
            call_with_state(cls), dtype=dtype, **tolerance)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_empty_batch_matches_torch(rng, cls):
    config = dict(num_layers=2, bidirectional=True)
    compare(getattr(nn, cls)(5, 4, **config), getattr(torch.nn, cls)(5, 4, **config),
            mode_arrays(rng, cls, config, batch=0), call_with_state(cls))


def test_projection_parameters_repr_and_errors():
    ours, theirs = (lib.nn.LSTM(5, 4, 2, proj_size=3, bidirectional=True) for lib in (distml, torch))
    assert repr(ours) == repr(theirs)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours.flatten_parameters() is None
    cases = [lambda lib: lib.nn.LSTM(5, 4, proj_size=-1), lambda lib: lib.nn.LSTM(5, 4, proj_size=4),
             lambda lib: lib.nn.GRU(5, 4, proj_size=2), lambda lib: lib.nn.LSTM(0, 4),
             lambda lib: lib.nn.LSTM(5, 4, proj_size=2)(lib.zeros(3, 2, 5), (lib.zeros(1, 2, 4), lib.zeros(1, 2, 4))),
             lambda lib: lib.nn.GRU(5, 4)(lib.zeros(0, 2, 5)), lambda lib: lib.nn.LSTM(5, 4)(lib.zeros(0, 5))]
    for make in cases:
        with pytest.raises(Exception) as expected:
            make(torch)
        with pytest.raises(expected.type) as raised:
            make(distml)
        assert str(raised.value) == str(expected.value)


def test_class_path_matches_torch():
    from distml.nn.modules.rnn import GRU, LSTM, RNN
    assert (LSTM, GRU, RNN) == (nn.LSTM, nn.GRU, nn.RNN)
    assert nn.LSTM.__module__ == "distml.nn.modules.rnn" and torch.nn.LSTM.__module__ == "torch.nn.modules.rnn"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_computes_in_float32(rng, dtype):
    config = dict(num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    ours, theirs = nn.GRU(5, 4, **config), torch.nn.GRU(5, 4, **config)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.to(getattr(distml, dtype))
    theirs.to(getattr(torch, dtype))
    d_x = distml.tensor(x).to(getattr(distml, dtype)).requires_grad_()
    t_x = torch.tensor(x).to(getattr(torch, dtype)).requires_grad_()
    d_out, t_out = ours(d_x)[0], theirs(t_x)[0]
    assert d_out.dtype == getattr(distml, dtype)
    d_out.float().sum().backward()
    t_out.float().sum().backward()
    np.testing.assert_allclose(d_out.float().detach().numpy(), t_out.float().detach().numpy(), rtol=0.05, atol=0.02)
    assert d_x.grad.dtype == getattr(distml, dtype)
    np.testing.assert_allclose(d_x.grad.float().numpy(), t_x.grad.float().numpy(), rtol=0.05, atol=0.05)


# ---- the fused kernel against a plain numpy reference and against its xp twin ----

def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
    """The layer's equations step by step on padded x (L, N, I), as the composed layer wrote them."""
    h, c, outputs = h0, c0, []
    for x_t in x:
        a, u = x_t @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if mode == "LSTM":
            i, f, g, o = np.split(a + u, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            h = h if w_hr is None else h @ w_hr.T
        elif mode == "GRU":
            (x_r, x_z, x_n), (h_r, h_z, h_n) = np.split(a, 3, axis=1), np.split(u, 3, axis=1)
            r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
            n = np.tanh(x_n + r * h_n)
            h = (1 - z) * n + z * h
        else:
            h = np.tanh(a + u) if mode == "RNN_TANH" else np.maximum(a + u, 0)
        outputs.append(h)
    return np.stack(outputs), h, c


KERNEL_CASES = [("RNN_TANH", 0), ("RNN_RELU", 0), ("GRU", 0), ("LSTM", 0), ("LSTM", 2)]


def kernel_inputs(rng, mode, proj, dtype, batch=3, length=5, features=6, hidden=4):
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    state = proj or hidden
    normal = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    return (normal(length, batch, features), normal(batch, state), normal(batch, hidden) if mode == "LSTM" else None,
            normal(gates * hidden, features), normal(gates * hidden, state), normal(gates * hidden),
            normal(gates * hidden), normal(proj, hidden) if proj else None)


@pytest.mark.parametrize("mode,proj", KERNEL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_matches_numpy_reference(rng, mode, proj, dtype):
    from distml.ops.rnn import MODES, RecurrentLayer
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = inputs = kernel_inputs(rng, mode, proj, dtype)
    length, batch = x.shape[:2]
    outputs = RecurrentLayer.apply(x.reshape(length * batch, -1), h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                                   mode=MODES[mode], batch_sizes=[batch] * length, reverse=False)
    expected = reference_layer(mode, *inputs)
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[0].numpy().reshape(length, batch, -1), expected[0], **tolerance)
    for ours, theirs in zip(outputs[1:], expected[1:]):
        assert ours.dtype.name == np.dtype(dtype).name
        np.testing.assert_allclose(ours.numpy(), theirs, **tolerance)


@pytest.mark.parametrize("mode,proj", KERNEL_CASES)
@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_matches_its_xp_twin_on_packed_rows(rng, mode, proj, reverse):
    """_C and the array-module version (the cupy path) run on the same packed rows, forward and backward."""
    from distml.ops import rnn
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = kernel_inputs(rng, mode, proj, np.float64, batch=4)
    batch_sizes = np.array([4, 3, 3, 1, 1], dtype=np.int64)
    x = x.reshape(-1, x.shape[2])[:batch_sizes.sum()]
    sizes = [rnn.MODES[mode], len(batch_sizes), 4, x.shape[1], w_hh.shape[0] // rnn._GATES[rnn.MODES[mode]], proj,
             int(reverse)]
    ours = rnn._forward_c(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    twin = rnn._forward_xp(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    for a, b in zip(ours[:3], twin[:3]):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    dy, dh_n = rng.standard_normal(ours[0].shape), rng.standard_normal(h0.shape)
    dc_n = rng.standard_normal(c0.shape) if c0 is not None else None
    grads = [run(sizes, batch_sizes, x, w_ih, w_hh, w_hr, True, saved, dy, dh_n, dc_n, True)
             for run, saved in ((rnn._backward_c, ours[3]), (rnn._backward_xp, twin[3]))]
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("lengths", [[5, 3, 3, 1], [2, 5, 1, 5]], ids=["sorted", "unsorted"])
def test_projected_lstm_on_packed_input_matches_torch(rng, lengths):
    config = dict(proj_size=2, num_layers=2, bidirectional=True)
    arrays = mode_arrays(rng, "LSTM", config, batch=len(lengths), length=5)

    def call(module, x, h0, c0):
        utils = (distml if isinstance(x, distml.Tensor) else torch).nn.utils.rnn
        packed = utils.pack_padded_sequence(x, lengths, enforce_sorted=lengths == sorted(lengths, reverse=True))
        output, finals = module(packed, (h0, c0))
        return utils.pad_packed_sequence(output)[0], finals

    compare(nn.LSTM(5, 4, **config), torch.nn.LSTM(5, 4, **config), arrays, call)


def test_dtype_mismatches_raise():
    for lib in (distml, torch):
        lstm = lib.nn.LSTM(3, 4).double()
        with pytest.raises(ValueError, match=r"RNN input dtype \(\w+.float32\) does not match weight dtype "
                                             r"\(\w+.float64\). Convert input: input.to\(\w+.float64\)"):
            lstm(lib.zeros(2, 1, 3))
        with pytest.raises(RuntimeError):
            lstm(lib.zeros(2, 1, 3, dtype=lib.float64), (lib.zeros(1, 1, 4), lib.zeros(1, 1, 4, dtype=lib.float64)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] dtype distml.float64 \(the input's\), got "
                                           r"distml.float32"):
        nn.LSTM(3, 4).double()(distml.zeros(2, 1, 3, dtype=distml.float64),
                               (distml.zeros(1, 1, 4), distml.zeros(1, 1, 4, dtype=distml.float64)))


@pytest.mark.parametrize("mode", ["RNN_TANH", "GRU", "LSTM"])
@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_split_among_threads_matches_one_thread(rng, mode, reverse):
    """At two threads the float32 kernel runs each thread's sequences through every step on its own
    (21 rows: one thread 16, the other 5, fewer as the packed steps shrink): the same outputs and
    gradients as one thread, and as the array-module twin."""
    from distml.ops import rnn
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = kernel_inputs(rng, mode, 0, np.float32, batch=21, length=5,
                                                             features=7, hidden=20)
    batch_sizes = np.array([21, 21, 17, 9, 3], dtype=np.int64)
    x = x.reshape(-1, x.shape[2])[:batch_sizes.sum()]
    sizes = [rnn.MODES[mode], len(batch_sizes), 21, x.shape[1], 20, 0, int(reverse)]
    dy = rng.standard_normal((x.shape[0], 20)).astype(np.float32)
    dh_n = rng.standard_normal(h0.shape).astype(np.float32)
    dc_n = rng.standard_normal(c0.shape).astype(np.float32) if c0 is not None else None

    def run(forward, backward):
        outputs = forward(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
        grads = backward(sizes, batch_sizes, x, w_ih, w_hh, w_hr, True, outputs[3], dy, dh_n, dc_n, True)
        return [a for a in list(outputs[:3]) + list(grads) if a is not None]

    threads = distml.get_num_threads()
    try:
        distml.set_num_threads(1)
        one = run(rnn._forward_c, rnn._backward_c)
        distml.set_num_threads(2)
        two = run(rnn._forward_c, rnn._backward_c)
    finally:
        distml.set_num_threads(threads)
    twin = run(rnn._forward_xp, rnn._backward_xp)
    assert len(one) == len(two) == len(twin)
    for a, b, c in zip(one, two, twin):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-4)
