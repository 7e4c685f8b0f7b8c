"""RNNCell / LSTMCell / GRUCell, nn.RNN, nn.utils.rnn (pad_sequence, pack_padded_sequence,
pad_packed_sequence, pack_sequence, PackedSequence) and the recurrent layers on packed input, against
torch with the same weights: values, float64 gradients of inputs, states and every parameter, errors."""
import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn.utils import rnn as rnn_utils
from torch.nn.utils import rnn as torch_rnn_utils


def tensors(lib, arrays, grad=True):
    return [lib.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]


def flat(output):
    """Every tensor in a (nested) output: tensors, tuples, PackedSequences (their data)."""
    if isinstance(output, (rnn_utils.PackedSequence, torch_rnn_utils.PackedSequence)):
        return [output.data]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flat(item)]
    return [output]


def compare(dm, tm, arrays, call, rtol=1e-9, atol=1e-11):
    """Load torch's weights into `dm`, run `call(lib, module, *tensors)` on both, backprop random upstream
    gradients through every output tensor, and compare outputs and all gradients (float64)."""
    tm = tm.double()
    dm.double()
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ours, theirs = tensors(distml, arrays), tensors(torch, arrays)
    d_out, t_out = flat(call(distml, dm, *ours)), flat(call(torch, tm, *theirs))
    assert len(d_out) == len(t_out)
    rng = np.random.default_rng(1)
    upstream = [rng.standard_normal(tuple(t.shape)) for t in t_out]
    sum((d * distml.tensor(u)).sum() for d, u in zip(d_out, upstream)).backward()
    sum((t * torch.from_numpy(u)).sum() for t, u in zip(t_out, upstream)).backward()
    for d, t in zip(d_out, t_out):
        assert tuple(d.shape) == tuple(t.shape) and d.dtype.name == str(t.dtype).replace("torch.", "")
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    for d, t in zip(ours, theirs):
        if t.requires_grad:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    t_params = dict(tm.named_parameters())
    assert [n for n, _ in dm.named_parameters()] == list(t_params)
    for name, p in dm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


# ---- cells ----

CELLS = [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
         ("LSTMCell", {"bias": False}), ("GRUCell", {"bias": False}), ("RNNCell", {"bias": False})]


def cell_id(case):
    name, config = case
    return name + "".join(f"-{k}={v}" for k, v in config.items())


@pytest.mark.parametrize("case", CELLS, ids=[cell_id(c) for c in CELLS])
@pytest.mark.parametrize("batch", [3, None], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_cells_match_torch_over_steps(rng, case, batch, with_state):
    """Three steps, each feeding the new state back, so gradients cross the state path too."""
    name, config = case
    lead = (batch,) if batch else ()
    steps = [rng.standard_normal(lead + (5,)) for _ in range(3)]
    states = [rng.standard_normal(lead + (4,)) for _ in range(2 if name == "LSTMCell" else 1)] if with_state else []

    def call(lib, cell, *arrays):
        xs, state = arrays[:3], arrays[3:]
        state = (tuple(state) if name == "LSTMCell" else state[0]) if state else None
        outputs = []
        for x in xs:
            state = cell(x, state)
            outputs.append(state)
        return outputs

    compare(getattr(nn, name)(5, 4, **config), getattr(torch.nn, name)(5, 4, **config), steps + states, call)


def test_cells_parameters_init_repr_and_float32(rng):
    for name, config in CELLS:
        ours, theirs = getattr(nn, name)(5, 4, **config), getattr(torch.nn, name)(5, 4, **config)
        assert repr(ours) == repr(theirs)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        values = np.concatenate([p.detach().numpy().ravel() for p in ours.parameters()])
        assert 0.3 < np.abs(values).max() <= 0.5  # uniform in +-1/sqrt(hidden_size)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        x = rng.standard_normal((2, 5)).astype(np.float32)
        d, t = flat(ours(distml.tensor(x))), flat(theirs(torch.tensor(x)))
        for a, b in zip(d, t):
            assert a.dtype == distml.float32
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"


def cell_errors(lib):
    nn_ = lib.nn
    lstm, gru, rnn = nn_.LSTMCell(3, 4), nn_.GRUCell(3, 4), nn_.RNNCell(3, 4)
    z = lib.zeros
    return [
        lambda: lstm(z(2, 5)), lambda: lstm(z(2, 3), (z(3, 4), z(2, 4))), lambda: lstm(z(2, 3), (z(2, 4), z(3, 4))),
        lambda: lstm(z(2, 3), (z(2, 5), z(2, 4))), lambda: lstm(z(2, 3), (z(2, 4), z(2, 5))),
        lambda: lstm(z(2, 3, 1)), lambda: lstm(z(3), (z(4), z(1, 2, 4))), lambda: gru(z(2, 3), z(3, 4)),
        lambda: gru(z(2, 3), z(2, 5)), lambda: rnn(z(2, 3), z(1, 2, 4)), lambda: nn_.RNN(3, 4, nonlinearity="gelu"),
        lambda: lstm(z(2, 3, dtype=lib.float64)),
    ]


def test_cell_errors_match_torch():
    for ours, theirs in zip(cell_errors(distml), cell_errors(torch)):
        with pytest.raises(Exception) as t:
            theirs()
        with pytest.raises(t.type) as d:
            ours()
        assert str(d.value) == str(t.value)
    cell = nn.RNNCell(3, 4)
    cell.nonlinearity = "sigmoid"
    with pytest.raises(RuntimeError, match="Unknown nonlinearity: sigmoid"):
        cell(distml.zeros(3))


# ---- nn.RNN ----

RNN_CONFIGS = [dict(), dict(nonlinearity="relu"), dict(num_layers=2, batch_first=True),
               dict(num_layers=2, bidirectional=True, nonlinearity="relu"), dict(bias=False, bidirectional=True)]


@pytest.mark.parametrize("config", RNN_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_rnn_matches_torch(rng, config, with_state):
    shape = (3, 6, 5) if config.get("batch_first") else (6, 3, 5)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    arrays = [rng.standard_normal(shape)] + ([rng.standard_normal((layers, 3, 4))] if with_state else [])
    compare(nn.RNN(5, 4, **config), torch.nn.RNN(5, 4, **config), arrays, lambda lib, m, *a: m(*a))


def test_rnn_unbatched_mode_and_repr(rng):
    arrays = [rng.standard_normal((7, 5)), rng.standard_normal((2, 4))]
    compare(nn.RNN(5, 4, 2, "relu"), torch.nn.RNN(5, 4, 2, "relu"), arrays, lambda lib, m, *a: m(*a))
    for config in RNN_CONFIGS:
        ours, theirs = nn.RNN(5, 4, **config), torch.nn.RNN(5, 4, **config)
        assert repr(ours) == repr(theirs) and ours.mode == theirs.mode
    assert isinstance(nn.RNN(5, 4), nn.RNNBase) and isinstance(nn.LSTMCell(5, 4), nn.RNNCellBase)


# ---- nn.utils.rnn ----

def sequences(rng, lengths, trailing=(3,)):
    return [rng.standard_normal((n,) + trailing) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence(rng, batch_first, padding_side):
    seqs = sequences(rng, [2, 5, 1], trailing=(3, 2))
    compare_fn = lambda lib, *s: (lib.nn.utils.rnn.pad_sequence(s, batch_first, -1.5, padding_side),)  # noqa: E731
    d_in, t_in = tensors(distml, seqs), tensors(torch, seqs)
    d, t = compare_fn(distml, *d_in)[0], compare_fn(torch, *t_in)[0]
    np.testing.assert_array_equal(d.detach().numpy(), t.detach().numpy())
    upstream = rng.standard_normal(tuple(t.shape))
    (d * distml.tensor(upstream)).sum().backward()
    (t * torch.from_numpy(upstream)).sum().backward()
    for a, b in zip(d_in, t_in):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_pad_sequence_dtypes_and_inputs():
    for lib in (distml, torch):
        ints = lib.nn.utils.rnn.pad_sequence([lib.tensor([1, 2]), lib.tensor([3.7])], padding_value=0.5)
        assert ints.dtype == lib.int64 and ints.tolist() == [[1, 3], [2, 0]]
        floats = lib.nn.utils.rnn.pad_sequence(iter([lib.tensor([1.0]), lib.tensor([2, 3])]), batch_first=True)
        assert floats.dtype == lib.float32 and floats.tolist() == [[1.0, 0.0], [2.0, 3.0]]
        rows = lib.nn.utils.rnn.pad_sequence(lib.ones(2, 3))
        assert tuple(rows.shape) == (3, 2)


def utils_errors(lib):
    u = lib.nn.utils.rnn
    x = lib.zeros(4, 3, 2)
    packed = u.pack_padded_sequence(x, [3, 1, 2], enforce_sorted=False)
    return [
        lambda: u.pad_sequence([]), lambda: u.pad_sequence([lib.ones(2)], padding_side="middle"),
        lambda: u.pad_sequence(5), lambda: u.pack_padded_sequence(x, [3, 2]),
        lambda: u.pack_padded_sequence(x, [3, 2, 4]), lambda: u.pack_padded_sequence(x, [3, 2, 0]),
        lambda: u.pack_padded_sequence(x, [3, 0, 2], enforce_sorted=False),
        lambda: u.pack_padded_sequence(x, lib.tensor([[3, 2, 1]])),
        lambda: u.pack_padded_sequence(lib.zeros(0, 3, 2), [3, 2, 1]),
        lambda: u.pad_packed_sequence(packed, total_length=2),
        lambda: u.pack_sequence([lib.ones(2), lib.ones(3)]),
        lambda: u.PackedSequence(lib.ones(3)),
    ]


def test_utils_errors_match_torch():
    for ours, theirs in zip(utils_errors(distml), utils_errors(torch)):
        with pytest.raises(Exception) as t:
            theirs()
        with pytest.raises(t.type) as d:
            ours()
        assert str(d.value) == str(t.value)
    with pytest.raises(RuntimeError, match="the longest length is 5, but the padded sequences have only 4 steps"):
        rnn_utils.pack_padded_sequence(distml.zeros(4, 3, 2), [5, 2, 1])
    with pytest.raises(RuntimeError, match=r"trailing dims of the first, \[3\], but got a sequence of shape \[3, 4\]"):
        rnn_utils.pad_sequence([distml.ones(2, 3), distml.ones(3, 4)])


def assert_same_packing(d, t):
    np.testing.assert_array_equal(d.data.detach().numpy(), t.data.detach().numpy())
    assert d.batch_sizes.dtype == distml.int64 and d.batch_sizes.tolist() == t.batch_sizes.tolist()
    for a, b in ((d.sorted_indices, t.sorted_indices), (d.unsorted_indices, t.unsorted_indices)):
        assert (a is None) == (b is None) and (a is None or a.tolist() == b.tolist())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [[5, 3, 3, 1], [2, 5, 3, 5, 1, 2]], ids=["sorted", "unsorted-ties"])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["list", "tensor"])
def test_pack_and_pad_round_trip(rng, batch_first, lengths, as_tensor):
    sorted_ = lengths == sorted(lengths, reverse=True)
    padded = rng.standard_normal((len(lengths), 6, 3) if batch_first else (6, len(lengths), 3))
    results = {}
    for lib in (distml, torch):
        u = lib.nn.utils.rnn
        x = lib.tensor(padded, requires_grad=True)
        packed = u.pack_padded_sequence(x, lib.tensor(lengths) if as_tensor else lengths, batch_first=batch_first,
                                        enforce_sorted=sorted_)
        out, out_lengths = u.pad_packed_sequence(packed, batch_first=batch_first, padding_value=9.0, total_length=7)
        upstream = np.random.default_rng(2).standard_normal(tuple(out.shape))
        (out * lib.tensor(upstream)).sum().backward()
        results[lib.__name__] = packed, out, out_lengths, x.grad
    (dp, d_out, d_len, d_grad), (tp, t_out, t_len, t_grad) = results["distml"], results["torch"]
    assert_same_packing(dp, tp)
    assert tuple(d_out.shape) == tuple(t_out.shape)
    np.testing.assert_array_equal(d_out.detach().numpy(), t_out.detach().numpy())
    assert d_len.dtype == distml.int64 and d_len.tolist() == t_len.tolist() == lengths
    np.testing.assert_array_equal(d_grad.numpy(), t_grad.numpy())


def test_pack_sequence_and_packed_sequence_methods(rng):
    seqs = sequences(rng, [2, 4, 3])
    d = rnn_utils.pack_sequence([distml.tensor(s) for s in seqs], enforce_sorted=False)
    t = torch_rnn_utils.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    assert_same_packing(d, t)
    assert d.to(distml.float64) is d and d.double() is d and not d.is_cuda
    single = d.float()
    assert single.data.dtype == distml.float32 and single.batch_sizes is d.batch_sizes
    assert single.sorted_indices.tolist() == d.sorted_indices.tolist()
    legacy = rnn_utils.PackedSequence((d.data, d.batch_sizes))
    assert legacy.data is d.data and legacy.sorted_indices is None and legacy.unsorted_indices is None
    given = rnn_utils.PackedSequence(d.data, d.batch_sizes, distml.tensor([2, 0, 1]))
    assert given.unsorted_indices.tolist() == torch_rnn_utils.invert_permutation(torch.tensor([2, 0, 1])).tolist()
    assert repr(rnn_utils.PackedSequence(distml.tensor([1.0]), distml.tensor([1]))) == \
        "PackedSequence(data=tensor([1.]), batch_sizes=tensor([1]), sorted_indices=None, unsorted_indices=None)"


# ---- recurrent layers on packed input ----

PACKED_CONFIGS = [("LSTM", dict()), ("GRU", dict(num_layers=2, bidirectional=True)),
                  ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)), ("RNN", dict(bidirectional=True)),
                  ("RNN", dict(num_layers=2, nonlinearity="relu", batch_first=True)), ("GRU", dict(bias=False))]


@pytest.mark.parametrize("case", PACKED_CONFIGS, ids=lambda c: c[0] + "".join(f"-{k}={v}" for k, v in c[1].items()))
@pytest.mark.parametrize("lengths", [[5, 3, 3, 1], [2, 5, 1, 5]], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_layers_on_packed_input_match_torch(rng, case, lengths, with_state):
    name, config = case
    batch_first = config.get("batch_first", False)
    shape = (len(lengths), 5, 3) if batch_first else (5, len(lengths), 3)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    states = [rng.standard_normal((layers, len(lengths), 4)) for _ in range(2 if name == "LSTM" else 1)]
    arrays = [rng.standard_normal(shape)] + (states if with_state else [])
    sorted_ = lengths == sorted(lengths, reverse=True)

    def call(lib, module, x, *state):
        u = lib.nn.utils.rnn
        packed = u.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=sorted_)
        hx = (tuple(state) if name == "LSTM" else state[0]) if state else None
        output, finals = module(packed, hx)
        assert isinstance(output, u.PackedSequence) and output.batch_sizes is packed.batch_sizes
        padded, out_lengths = u.pad_packed_sequence(output, batch_first=batch_first)
        assert out_lengths.tolist() == lengths
        return padded, finals

    compare(getattr(nn, name)(3, 4, **config), getattr(torch.nn, name)(3, 4, **config), arrays, call)


def test_packed_input_errors():
    for lib in (distml, torch):
        packed = lib.nn.utils.rnn.pack_padded_sequence(lib.zeros(4, 3, 5), [4, 2, 1])
        with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. Expected 6, got 5"):
            lib.nn.GRU(6, 4)(packed)
    # torch fails on these inside its own kernels (shape and broadcasting messages); distml says what is wrong
    packed = rnn_utils.pack_padded_sequence(distml.zeros(4, 3, 5), [4, 2, 1])
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 3, 4\), got \[1, 2, 4\]"):
        nn.LSTM(5, 4)(packed, (distml.zeros(1, 2, 4), distml.zeros(1, 3, 4)))
    with pytest.raises(RuntimeError, match="input must have 2 dimensions, got 3"):
        nn.LSTM(5, 4)(rnn_utils.PackedSequence(distml.zeros(7, 3, 5), packed.batch_sizes))
