"""Batches of variable-length sequences: padding them to one length, and packing them (time step by
time step, longest first) so that the recurrent layers skip the padding. PyTorch's functions, composed
from cat, stack, split and index_select (gradients flow to the sequences).

    padded = pad_sequence([a, b, c], batch_first=True)             # (3, longest, *)
    packed = pack_padded_sequence(padded, [5, 2, 3], batch_first=True, enforce_sorted=False)
    output, h_n = nn.GRU(8, 16, batch_first=True)(packed)         # output is a PackedSequence
    padded_out, lengths = pad_packed_sequence(output, batch_first=True)
"""
from collections import namedtuple
from collections.abc import Iterable

import numpy as np

from distml import dtypes, ops
from distml.creation import as_tensor, full, tensor
from distml.tensor import Tensor


class PackedSequence(namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A packed batch: `data` (sum of lengths, *) holds step 0 of every sequence, then step 1 of those
    still running, ...; `batch_sizes` (an int64 CPU tensor) says how many sequences each step has;
    `sorted_indices` orders the original batch longest first (None when it already was) and
    `unsorted_indices` is its inverse. Made by pack_padded_sequence / pack_sequence."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        elif batch_sizes.device.type != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence should never be created "
                             "manually. They should be instantiated by functions like pack_sequence and "
                             "pack_padded_sequences in nn.utils.rnn. "
                             "https://pytorch.org/docs/stable/nn.html#torch.nn.utils.rnn.pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """The same packing with `data.to(*args, **kwargs)` (the indices follow its device); self when
        data does not change."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        indices = [None if i is None else i.to(data.device) for i in (self.sorted_indices, self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *indices)

    def cuda(self, device=None):
        return self.to(self.data.cuda(device).device)

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    def half(self):
        return self.to(dtypes.float16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    @property
    def is_cuda(self):
        return self.data.is_cuda


def invert_permutation(permutation):
    """The inverse of an index permutation (None stays None): `invert_permutation(sorted_indices)`."""
    return None if permutation is None else ops.argsort(permutation)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors (L_i, *) into (longest, batch, *) (batch first with batch_first), filling the
    shorter ones with padding_value after their end (before it with padding_side="left"); the
    result has the first sequence's dtype: `pad_sequence([a, b], batch_first=True)`."""
    if not isinstance(sequences, Iterable):
        raise RuntimeError(f"pad_sequence: Expected iterable for input sequences, but got arg of type: "
                           f"{type(sequences)}")
    sequences = tuple(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    first = sequences[0]
    trailing = tuple(first.shape[1:])
    longest = max(s.size(0) for s in sequences)
    padded = []
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: every sequence must have the trailing dims of the first, "
                               f"{list(trailing)}, but got a sequence of shape {list(s.shape)}")
        gap = full((longest - s.size(0), *trailing), padding_value, dtype=first.dtype, device=first.device)
        s = s.to(first.dtype)
        padded.append(ops.cat([s, gap] if padding_side == "right" else [gap, s], 0))
    return ops.stack(padded, 0 if batch_first else 1)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences of `lengths`
    (a list or tensor). With enforce_sorted the lengths must be decreasing; otherwise the batch is
    sorted (stably) first and the order recorded: `pack_padded_sequence(x, [3, 5, 2], enforce_sorted=False)`."""
    lengths = lengths.to(dtypes.int64) if isinstance(lengths, Tensor) else as_tensor(lengths, dtype=dtypes.int64)
    if lengths.dim() != 1:
        raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got {lengths.dim()}D "
                           f"{lengths.device.type} Long tensor")
    sorted_indices = None
    if not enforce_sorted:
        lengths, sorted_indices = ops.sort(lengths, descending=True, stable=True)
        sorted_indices = sorted_indices.to(input.device)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    steps = input.transpose(0, 1) if batch_first else input
    if steps.numel() == 0:
        raise RuntimeError("Cannot pack empty tensors.")
    sizes = lengths.tolist()
    if len(sizes) != steps.size(1):
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(sizes)} "
                           f"(batch_size={steps.size(1)})")
    if sizes[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that "
                           "is <= 0")
    if any(a < b for a, b in zip(sizes, sizes[1:])):
        raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can "
                           "pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this "
                           "requirement if you do not need ONNX exportability.")
    if sizes[0] > steps.size(0):
        raise RuntimeError(f"pack_padded_sequence: the longest length is {sizes[0]}, but the padded sequences have "
                           f"only {steps.size(0)} steps")
    batch_sizes = (np.array(sizes)[None, :] > np.arange(sizes[0])[:, None]).sum(1).tolist()
    data = ops.cat([steps[t, :size] for t, size in enumerate(batch_sizes)], 0)
    return PackedSequence(data, tensor(batch_sizes, dtype=dtypes.int64), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths as an int64 tensor), in the
    original batch order; total_length pads T further (to match the input of a DataParallel
    split): `out, lengths = pad_packed_sequence(packed_output, batch_first=True)`."""
    batch_sizes = sequence.batch_sizes.tolist()
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {steps}")
        steps = total_length
    data, batch = sequence.data, batch_sizes[0]
    rows = []
    for step in ops.split(data, batch_sizes, 0):
        if step.size(0) < batch:
            gap = full((batch - step.size(0), *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
            step = ops.cat([step, gap], 0)
        rows.append(step)
    rows += [full((batch, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)] * (steps - len(rows))
    padded = ops.stack(rows, 1 if batch_first else 0)
    lengths = tensor((np.array(batch_sizes)[:, None] > np.arange(batch)[None, :]).sum(0), dtype=dtypes.int64)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(0 if batch_first else 1, sequence.unsorted_indices)
        lengths = lengths[sequence.unsorted_indices.cpu()]
    return padded, lengths


def pack_sequence(sequences, enforce_sorted=True):
    """pack_padded_sequence(pad_sequence(sequences), their lengths): `pack_sequence([a, b, c])`."""
    lengths = [s.size(0) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)
