"""Gradient clipping and flattening parameters to one vector and back."""
from distml.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from distml.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
