"""One recurrent layer in one direction as one primitive: RNN (tanh, relu), LSTM (optionally projected)
and GRU over a whole packed sequence, forward and backward in `_C` on the CPU (csrc/kernels/rnn.h)
with an xp twin for cupy.

The input projection of every step is one matrix product, each step one product with W_hh plus a
fused gate loop; backward walks the steps in reverse and forms the weight gradients as products over
all steps. Packed rows: step t holds the first batch_sizes[t] sequences (PyTorch's PackedSequence
layout; a padded (L, N) batch is L steps of N).
"""
import numpy as np

from distml import dtypes, kernels
from distml._backend import blas_core, get_array_module
from distml.autograd.function import Primitive

MODES = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}
_GATES = {0: 1, 1: 1, 2: 4, 3: 3}
_TANH, _RELU, _LSTM, _GRU = range(4)


class RecurrentLayer(Primitive):
    """`y, h_n(, c_n) = RecurrentLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode=MODES["LSTM"],
    batch_sizes=[N] * L, reverse=False)` on packed rows x (sum(batch_sizes), input); c0 (LSTM), the
    biases and w_hr (a projected LSTM) may be None. c_n is returned for LSTM only."""

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, batch_sizes, reverse):
        self.dtype = x.dtype
        wide = np.float32 if x.dtype in (np.float16, dtypes.bfloat16.np) else x.dtype
        xp = get_array_module(x)
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = (
            None if a is None else xp.ascontiguousarray(a, dtype=wide) for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr))
        self.batch_sizes = np.ascontiguousarray(batch_sizes, dtype=np.int64)
        hidden = w_hh.shape[0] // _GATES[mode]
        proj = 0 if w_hr is None else w_hr.shape[0]
        self.sizes = [mode, len(self.batch_sizes), h0.shape[0], x.shape[1], hidden, proj, int(reverse)]
        self.arrays = x, w_ih, w_hh, w_hr, b_ih is not None
        if kernels.compiled("rnn_forward", x) is not None:
            y, h_n, c_n, self.saved = _forward_c(self.sizes, self.batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
        else:
            y, h_n, c_n, self.saved = _forward_xp(self.sizes, self.batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                  w_hr)
        outputs = (y, h_n) if mode != _LSTM else (y, h_n, c_n)
        return tuple(a.astype(self.dtype, copy=False) for a in outputs)

    def backward(self, dy, dh_n, dc_n=None):
        x, w_ih, w_hh, w_hr, bias = self.arrays
        xp = get_array_module(x)
        dy, dh_n, dc_n = (None if a is None else xp.ascontiguousarray(a, dtype=x.dtype) for a in (dy, dh_n, dc_n))
        run = _backward_c if kernels.compiled("rnn_backward", x) is not None else _backward_xp
        grads = run(self.sizes, self.batch_sizes, x, w_ih, w_hh, w_hr, bias, self.saved, dy, dh_n, dc_n,
                    self.needs_input_grad[0])
        return tuple(None if g is None else g.astype(self.dtype, copy=False) for g in grads)


def _saved_buffers(xp, sizes, rows, dtype):
    """What forward saves, as csrc/kernels/rnn.h's RnnSaved: gates, h_prev, aux1, aux2, h_raw."""
    mode, _, _, _, hidden, proj, _ = sizes
    state = proj or hidden
    empty = lambda *shape: xp.empty(shape, dtype=dtype)  # noqa: E731
    return (empty(rows, _GATES[mode] * hidden), empty(rows, state),
            empty(rows, hidden) if mode in (_LSTM, _GRU) else None,
            empty(rows, hidden) if mode == _LSTM else None,
            empty(rows, hidden) if proj else None)


def _forward_c(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
    mode, _, batch, _, hidden, proj, _ = sizes
    rows = x.shape[0]
    y, h_n = np.empty((rows, proj or hidden), dtype=x.dtype), np.empty((batch, proj or hidden), dtype=x.dtype)
    c_n = np.empty((batch, hidden), dtype=x.dtype) if mode == _LSTM else None
    saved = _saved_buffers(np, sizes, rows, x.dtype)
    blas_core().rnn_forward(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, h_n, c_n, *saved)
    return y, h_n, c_n, saved


def _backward_c(sizes, batch_sizes, x, w_ih, w_hh, w_hr, bias, saved, dy, dh_n, dc_n, need_dx):
    like = lambda a: None if a is None else np.empty_like(a)  # noqa: E731
    dx = np.empty_like(x) if need_dx else None
    dh0, dc0 = np.empty_like(dh_n), like(dc_n)
    dw_ih, dw_hh, dw_hr = np.empty_like(w_ih), np.empty_like(w_hh), like(w_hr)
    db_ih, db_hh = (np.empty(w_hh.shape[0], dtype=x.dtype) if bias else None for _ in range(2))
    blas_core().rnn_backward(sizes, batch_sizes, x, w_ih, w_hh, w_hr, *saved, dy, dh_n, dc_n, dx, dh0, dc0, dw_ih,
                             dw_hh, db_ih, db_hh, dw_hr)
    return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr


def _steps(sizes, batch_sizes):
    """(first row, batch size) of each step in the order the layer runs them."""
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)[:-1]]).astype(int)
    order = range(len(batch_sizes))
    return [(int(offsets[t]), int(batch_sizes[t])) for t in (reversed(order) if sizes[6] else order)]


def _sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def _forward_xp(sizes, batch_sizes, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
    """The kernel's algorithm in array ops, for arrays _C cannot take."""
    xp = get_array_module(x)
    mode, H = sizes[0], sizes[4]
    gates, h_prev, aux1, aux2, h_raw = saved = _saved_buffers(xp, sizes, x.shape[0], x.dtype)
    pre = x @ w_ih.T + (0 if b_ih is None else b_ih)
    y = xp.empty_like(h_prev)
    state, cell = h0.copy(), None if c0 is None else c0.copy()
    for base, b in _steps(sizes, batch_sizes):
        rows = slice(base, base + b)
        h_prev[rows] = state[:b]
        hp = h_prev[rows]
        u = hp @ w_hh.T + (0 if b_hh is None else b_hh)
        if mode == _LSTM:
            v = pre[rows] + u
            i, f, o = (_sigmoid(xp, v[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
            g = xp.tanh(v[:, 2 * H:3 * H])
            gates[rows] = xp.concatenate([i, f, g, o], axis=1)
            aux1[rows] = cell[:b]
            cell[:b] = f * cell[:b] + i * g
            aux2[rows] = xp.tanh(cell[:b])
            h = o * aux2[rows]
            if w_hr is not None:
                h_raw[rows] = h
                h = h @ w_hr.T
        elif mode == _GRU:
            r, z = (_sigmoid(xp, pre[rows, k * H:(k + 1) * H] + u[:, k * H:(k + 1) * H]) for k in (0, 1))
            aux1[rows] = u[:, 2 * H:]
            n = xp.tanh(pre[rows, 2 * H:] + r * aux1[rows])
            gates[rows] = xp.concatenate([r, z, n], axis=1)
            h = (1 - z) * n + z * hp
        else:
            v = pre[rows] + u
            h = gates[rows] = xp.tanh(v) if mode == _TANH else xp.maximum(v, 0)
        state[:b] = y[rows] = h
    return y, state, cell, saved


def _backward_xp(sizes, batch_sizes, x, w_ih, w_hh, w_hr, bias, saved, dy, dh_n, dc_n, need_dx):
    xp = get_array_module(x)
    mode, H = sizes[0], sizes[4]
    gates, h_prev, aux1, aux2, h_raw = saved
    dg = xp.empty_like(gates)
    dg_h = xp.empty_like(gates) if mode == _GRU else dg
    dh_proj = xp.empty_like(dy) if w_hr is not None else None
    dh0, dc0 = dh_n.copy(), None if dc_n is None else dc_n.copy()
    for base, b in reversed(_steps(sizes, batch_sizes)):
        rows = slice(base, base + b)
        dh0[:b] += dy[rows]
        d = dh0[:b]
        if w_hr is not None:
            dh_proj[rows] = d
            d = d @ w_hr
        g = gates[rows]
        if mode == _LSTM:
            i, f, c, o = (g[:, k * H:(k + 1) * H] for k in range(4))
            tanh_c = aux2[rows]
            dc = dc0[:b] + d * o * (1 - tanh_c * tanh_c)
            dg[rows] = xp.concatenate([dc * c * i * (1 - i), dc * aux1[rows] * f * (1 - f), dc * i * (1 - c * c),
                                       d * tanh_c * o * (1 - o)], axis=1)
            dc0[:b] = dc * f
        elif mode == _GRU:
            r, z, n = (g[:, k * H:(k + 1) * H] for k in range(3))
            dn = d * (1 - z) * (1 - n * n)
            dr = dn * aux1[rows] * r * (1 - r)
            dz = d * (h_prev[rows] - n) * z * (1 - z)
            dg[rows] = xp.concatenate([dr, dz, dn], axis=1)
            dg_h[rows] = xp.concatenate([dr, dz, dn * r], axis=1)
        else:
            dg[rows] = d * (1 - g * g) if mode == _TANH else d * (g > 0)
        direct = d * z if mode == _GRU else 0
        dh0[:b] = direct + dg_h[rows] @ w_hh
    db_ih, db_hh = (dg.sum(0), dg_h.sum(0)) if bias else (None, None)
    dx = dg @ w_ih if need_dx else None
    dw_hr = None if w_hr is None else dh_proj.T @ h_raw
    return dx, dh0, dc0, dg.T @ x, dg_h.T @ h_prev, db_ih, db_hh, dw_hr
