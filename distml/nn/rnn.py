"""Recurrent layers LSTM and GRU, composed from linear, sigmoid, tanh, stack and cat (no new gradients).

Parameter names, shapes, gate order and initialisation are PyTorch's, so weights load through state_dict.
"""
import math
import warnings

from distml import ops
from distml.creation import empty, zeros
from distml.nn import functional as F
from distml.nn import init
from distml.nn.module import Module
from distml.nn.parameter import Parameter


class RNNBase(Module):
    """Shared by LSTM and GRU: the per-layer, per-direction weights and the loop over layers and time."""

    _gates = None  # gate blocks stacked in weight_ih / weight_hh: 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__()
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        self.mode = type(self).__name__
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self._flat_weights_names = []
        gate_size = self._gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self._directions
            for direction in range(self._directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self):
        """Every weight and bias uniform in +-1/sqrt(hidden_size), as PyTorch's."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
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
        return [getattr(self, name + suffix, None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def _check_input(self, input):
        if input.dim() not in (2, 3):
            raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        if input.size(-1) != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.size(-1)}")

    def _initial_state(self, state, batch, input, label):
        """`state` (or zeros) as (layers * directions, batch, hidden), checked against that shape."""
        expected = (self.num_layers * self._directions, batch, self.hidden_size)
        if state is None:
            return zeros(*expected, dtype=input.dtype, device=input.device)
        if tuple(state.shape) != expected:
            raise RuntimeError(f"Expected {label} size {expected}, got {list(state.shape)}")
        return state

    def _run(self, input, states):
        """The layer/direction/time loop over time-major `input` (L, N, features) and the initial
        states (each (layers * directions, N, hidden)); returns the output and the final states.
        """
        length = input.size(0)
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
                index = layer * self._directions + direction
                state = tuple(s[index] for s in states)
                # The input projection of every time step in one matrix product.
                projected = ops.unbind(F.linear(input, w_ih, b_ih), 0)
                hidden = [None] * length
                for t in (reversed(range(length)) if direction else range(length)):
                    state = self._cell(projected[t], state, w_hh, b_hh)
                    hidden[t] = state[0]
                outputs.append(ops.stack(hidden, 0))
                for final, s in zip(finals, state):
                    final.append(s)
            input = outputs[0] if len(outputs) == 1 else ops.cat(outputs, 2)
            if layer < self.num_layers - 1 and self.dropout > 0:
                input = F.dropout(input, self.dropout, self.training)
        return input, [ops.stack(final, 0) for final in finals]

    def forward(self, input, hx=None):
        self._check_input(input)
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        states = self._states(hx, batched, input)
        output, finals = self._run(input, states)
        if not batched:
            output, finals = output.squeeze(1), [f.squeeze(1) for f in finals]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack(finals)


class LSTM(RNNBase):
    """Long short-term memory: `lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)`;
    `output, (h_n, c_n) = lstm(x, (h_0, c_0))` (the initial states default to zeros).
    """

    _gates = 4

    def _states(self, hx, batched, input):
        if hx is None:
            hx = (None, None)
        elif not batched:
            hx = tuple(h.unsqueeze(1) for h in hx)
        return [self._initial_state(h, input.size(1), input, f"hidden[{i}]") for i, h in enumerate(hx)]

    def _pack(self, finals):
        return tuple(finals)

    @staticmethod
    def _cell(x_projected, state, w_hh, b_hh):
        h, c = state
        i, f, g, o = ops.chunk(x_projected + F.linear(h, w_hh, b_hh), 4, 1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        return ops.sigmoid(o) * ops.tanh(c), c


class GRU(RNNBase):
    """Gated recurrent unit: `gru = nn.GRU(10, 20, num_layers=2)`; `output, h_n = gru(x, h_0)`."""

    _gates = 3

    def _states(self, hx, batched, input):
        if hx is not None and not batched:
            hx = hx.unsqueeze(1)
        return [self._initial_state(hx, input.size(1), input, "hidden")]

    def _pack(self, finals):
        return finals[0]

    @staticmethod
    def _cell(x_projected, state, w_hh, b_hh):
        (h,) = state
        x_r, x_z, x_n = ops.chunk(x_projected, 3, 1)
        h_r, h_z, h_n = ops.chunk(F.linear(h, w_hh, b_hh), 3, 1)
        r = ops.sigmoid(x_r + h_r)
        z = ops.sigmoid(x_z + h_z)
        n = ops.tanh(x_n + r * h_n)
        return (n + z * (h - n),)
