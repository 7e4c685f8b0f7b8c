"""Gradient clipping, flattening parameters to one vector and back, and variable-length sequences (rnn)."""
from distml.nn.utils import rnn
from distml.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from distml.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
