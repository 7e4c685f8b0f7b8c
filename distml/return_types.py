"""Named tuples returned by ops that give values and indices, as `torch.return_types`:
`values, indices = x.max(dim=1)`, or `x.max(dim=1).indices`."""
from collections import namedtuple

max = namedtuple("max", ["values", "indices"])
min = namedtuple("min", ["values", "indices"])
sort = namedtuple("sort", ["values", "indices"])
topk = namedtuple("topk", ["values", "indices"])
histogram = namedtuple("histogram", ["hist", "bin_edges"])
