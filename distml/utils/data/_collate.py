"""How a list of samples becomes a batch: PyTorch's `default_collate` and `default_convert`."""
import collections.abc
import copy

import numpy as np

from distml.tensor import Tensor

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_string_array(array):
    return array.dtype.kind in "SaUO"


def _stack(arrays):
    from distml.ops import stack
    return stack([Tensor(a) for a in arrays])


def _map_structure(elem, values):
    """A container of elem's type holding `values` (a dict for mappings, a list for sequences)."""
    if isinstance(elem, collections.abc.Mapping):
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        try:
            return type(elem)(values)
        except TypeError:
            return values
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*values)
    if isinstance(elem, tuple):
        return values
    if isinstance(elem, collections.abc.MutableSequence):
        clone = copy.copy(elem)
        clone[:] = values
        return clone
    try:
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """Stack a list of samples into a batch, keeping their structure (PyTorch's rules).

    Tensors and numpy arrays are stacked into a Tensor with a new first dimension; Python
    floats become float64, ints int64 and bools bool tensors; strings stay a list; dicts,
    namedtuples, tuples and lists are collated field by field (tuples come back as lists).

        default_collate([(np.zeros(2), 0), (np.ones(2), 1)])  # [tensor of shape (2, 2), tensor([0, 1])]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([b.detach().array for b in batch])
    if isinstance(elem, np.ndarray):
        if _is_string_array(elem):
            raise TypeError(_ERROR.format(elem.dtype))
        return _stack([np.asarray(b) for b in batch])
    if isinstance(elem, (np.number, np.bool_)):
        return Tensor(np.array(batch))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _map_structure(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return _map_structure(elem, [default_collate(list(samples)) for samples in zip(*batch)])
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data):
    """What a DataLoader with `batch_size=None` does to each sample: numpy arrays become Tensors."""
    if isinstance(data, np.ndarray):
        return data if _is_string_array(data) else Tensor(data)
    if isinstance(data, (np.number, np.bool_)):
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _map_structure(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _map_structure(data, [default_convert(d) for d in data])
    return data
