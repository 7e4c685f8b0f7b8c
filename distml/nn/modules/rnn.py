"""Recurrent layers RNN, LSTM and GRU and their single-step cells RNNCell, LSTMCell and GRUCell.

A layer runs each of its layers and directions as one fused primitive over the whole sequence
(distml/ops/rnn.py); a cell composes its one step from linear, sigmoid, tanh, relu and chunk.
Parameter names, shapes, gate order and initialisation are PyTorch's, so weights load through state_dict.
"""
import math
import warnings

import numpy as np

from distml import ops
from distml.creation import empty, zeros
from distml.nn import functional as F
from distml.nn import init
from distml.nn.module import Module
from distml.nn.parameter import Parameter
from distml.nn.utils.rnn import PackedSequence
from distml.ops.rnn import MODES, RecurrentLayer


# ---- one cell step: (input projection W_ih x + b_ih, state tuple, W_hh, b_hh) -> new state tuple ----

def _lstm_step(x_projected, state, w_hh, b_hh):
    h, c = state
    i, f, g, o = ops.chunk(x_projected + F.linear(h, w_hh, b_hh), 4, 1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _gru_step(x_projected, state, w_hh, b_hh):
    (h,) = state
    x_r, x_z, x_n = ops.chunk(x_projected, 3, 1)
    h_r, h_z, h_n = ops.chunk(F.linear(h, w_hh, b_hh), 3, 1)
    r = ops.sigmoid(x_r + h_r)
    z = ops.sigmoid(x_z + h_z)
    n = ops.tanh(x_n + r * h_n)
    return (n + z * (h - n),)


def _tanh_step(x_projected, state, w_hh, b_hh):
    return (ops.tanh(x_projected + F.linear(state[0], w_hh, b_hh)),)


def _relu_step(x_projected, state, w_hh, b_hh):
    return (F.relu(x_projected + F.linear(state[0], w_hh, b_hh)),)


_RNN_STEPS = {"tanh": _tanh_step, "relu": _relu_step}


def _uniform_init(module):
    """Every weight and bias uniform in +-1/sqrt(hidden_size), as PyTorch's."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


class RNNBase(Module):
    """Shared by RNN, LSTM and GRU: the per-layer, per-direction weights and the loop over layers.

    Inputs are (L, N, features) (N first with batch_first), unbatched (L, features), or a PackedSequence
    (then the output is one too, and each sequence's final state is taken at its own last step).
    """

    _gates = None  # gate blocks stacked in weight_ih / weight_hh: 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size != 0 and not isinstance(self, LSTM):
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.mode = type(self).__name__
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = proj_size
        self._flat_weights_names = []
        gate_size, state_size = self._gates * hidden_size, proj_size or hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else state_size * self._directions
            for direction in range(self._directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, state_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes.update(weight_hr=(proj_size, hidden_size))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self):
        _uniform_init(self)

    def flatten_parameters(self):
        """PyTorch compacts the weights for cuDNN here; on the CPU, as in PyTorch, there is nothing to do."""

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            text += f", bidirectional={self.bidirectional}"
        return text

    def _weights(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return [getattr(self, name + suffix, None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                                                "weight_hr")]

    def _check_input(self, input, packed):
        if packed and input.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {input.dim()}")
        if not packed and input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        if input.size(-1) != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.size(-1)}")
        weight = self.weight_ih_l0.dtype
        if input.dtype != weight:
            raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight}). Convert "
                             f"input: input.to({weight}), or convert model: model.to({input.dtype})")

    def _initial_state(self, state, batch, input, label, features):
        """`state` (or zeros) as (layers * directions, batch, features), checked against that shape."""
        expected = (self.num_layers * self._directions, batch, features)
        if state is None:
            return zeros(*expected, dtype=input.dtype, device=input.device)
        if tuple(state.shape) != expected:
            raise RuntimeError(f"Expected {label} size {expected}, got {list(state.shape)}")
        if state.dtype != input.dtype:
            raise RuntimeError(f"Expected {label} dtype {input.dtype} (the input's), got {state.dtype}")
        return state

    def _run(self, data, batch_sizes, states):
        """The layer/direction loop over packed `data` (sum(batch_sizes), features): step t holds
        the first batch_sizes[t] sequences (a padded batch is the case of equal sizes). `states` are the
        initial states, each (layers * directions, batch_sizes[0], features); returns the packed output
        and the final states, each sequence's taken at its own last step.
        """
        batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
        mode = MODES[self.mode]
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                index = layer * self._directions + direction
                h0, c0 = states[0][index], states[1][index] if len(states) > 1 else None
                y, *state = RecurrentLayer.apply(data, h0, c0, *self._weights(layer, direction), mode=mode,
                                                 batch_sizes=batch_sizes, reverse=bool(direction))
                outputs.append(y)
                for final, s in zip(finals, state):
                    final.append(s)
            data = outputs[0] if len(outputs) == 1 else ops.cat(outputs, 1)
            if layer < self.num_layers - 1 and self.dropout > 0:
                data = F.dropout(data, self.dropout, self.training)
        return data, [ops.stack(final, 0) for final in finals]

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        self._check_input(input, packed=False)
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.size(0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        states = self._states(hx, batched, input.size(1), input)
        length, batch = input.size(0), input.size(1)
        data, finals = self._run(input.reshape(length * batch, input.size(2)), [batch] * length, states)
        output = data.reshape(length, batch, data.size(1))
        if not batched:
            output, finals = output.squeeze(1), [f.squeeze(1) for f in finals]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack(finals)

    def _forward_packed(self, input, hx):
        data, batch_sizes, sorted_indices, unsorted_indices = input
        self._check_input(data, packed=True)
        sizes = batch_sizes.tolist()
        states = self._states(hx, True, sizes[0], data)
        if hx is not None and sorted_indices is not None:  # the given states follow the batch into length order
            states = [s.index_select(1, sorted_indices) for s in states]
        output, finals = self._run(data, sizes, states)
        if unsorted_indices is not None:
            finals = [f.index_select(1, unsorted_indices) for f in finals]
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), self._pack(finals)


class _SingleState:
    """RNN and GRU: one state tensor h."""

    def _states(self, hx, batched, batch, input):
        if hx is not None and not batched:
            hx = hx.unsqueeze(1)
        return [self._initial_state(hx, batch, input, "hidden", self.hidden_size)]

    def _pack(self, finals):
        return finals[0]


class RNN(_SingleState, RNNBase):
    """Elman RNN, h' = tanh (or relu) of W_ih x + b_ih + W_hh h + b_hh:
    `rnn = nn.RNN(10, 20, num_layers=2, nonlinearity="relu")`; `output, h_n = rnn(x, h_0)`.
    """

    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in _RNN_STEPS:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity, self.mode = nonlinearity, "RNN_" + nonlinearity.upper()


class LSTM(RNNBase):
    """Long short-term memory: `lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)`;
    `output, (h_n, c_n) = lstm(x, (h_0, c_0))` (the initial states default to zeros); with proj_size P,
    h = W_hr (o * tanh(c)) has P features.
    """

    _gates = 4

    def _states(self, hx, batched, batch, input):
        if hx is None:
            hx = (None, None)
        elif not batched:
            hx = tuple(h.unsqueeze(1) for h in hx)
        features = (self.proj_size or self.hidden_size, self.hidden_size)
        return [self._initial_state(h, batch, input, f"hidden[{i}]", n) for i, (h, n) in enumerate(zip(hx, features))]

    def _pack(self, finals):
        return tuple(finals)


class GRU(_SingleState, RNNBase):
    """Gated recurrent unit: `gru = nn.GRU(10, 20, num_layers=2)`; `output, h_n = gru(x, h_0)`."""

    _gates = 3


class RNNCellBase(Module):
    """One time step of a recurrent layer: weight_ih (gates * hidden, input), weight_hh
    (gates * hidden, hidden), bias_ih and bias_hh; input (N, input_size) or unbatched (input_size),
    the state defaults to zeros."""

    _gates = None

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = self._gates * hidden_size
        self.weight_ih = Parameter(empty(gate_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(gate_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(gate_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(gate_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _uniform_init(self)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text

    def _forward_states(self, input, states, labels):
        """Check input and states (None: zeros), run one step, return the new states (unbatched as given)."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for state, label in zip(states, labels):
            if state is not None and state.dim() not in (1, 2):
                raise ValueError(f"{name}: Expected {label} to be 1D or 2D, got {state.dim()}D instead")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
            states = [None if s is None else s.unsqueeze(0) for s in states]
        if input.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {self.input_size}")
        batch = input.size(0)
        checked = []
        for i, state in enumerate(states):
            if state is None:
                state = zeros(batch, self.hidden_size, dtype=input.dtype, device=input.device)
            elif state.size(0) != batch:
                raise RuntimeError(f"Input batch size {batch} doesn't match hidden{i} batch size {state.size(0)}")
            elif state.size(1) != self.hidden_size:
                raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got {state.size(1)}, expected "
                                   f"{self.hidden_size}")
            checked.append(state)
        result = self._step(F.linear(input, self.weight_ih, self.bias_ih), tuple(checked), self.weight_hh,
                            self.bias_hh)
        return result if batched else tuple(r.squeeze(0) for r in result)


class RNNCell(RNNCellBase):
    """h' = tanh (or relu) of W_ih x + b_ih + W_hh h + b_hh: `cell = nn.RNNCell(10, 20)`; `h = cell(x, h)`."""

    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    @property
    def _step(self):
        if self.nonlinearity not in _RNN_STEPS:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        return _RNN_STEPS[self.nonlinearity]

    def forward(self, input, hx=None):
        return self._forward_states(input, [hx], ["hidden"])[0]


class LSTMCell(RNNCellBase):
    """One LSTM step: `cell = nn.LSTMCell(10, 20)`; `h, c = cell(x, (h, c))` (zeros when hx is None)."""

    _gates = 4
    _step = staticmethod(_lstm_step)

    def forward(self, input, hx=None):
        return self._forward_states(input, [None, None] if hx is None else list(hx), ["hx[0]", "hx[1]"])


class GRUCell(RNNCellBase):
    """One GRU step: `cell = nn.GRUCell(10, 20)`; `h = cell(x, h)`."""

    _gates = 3
    _step = staticmethod(_gru_step)

    def forward(self, input, hx=None):
        return self._forward_states(input, [hx], ["hidden"])[0]
