"""Datasets and random_split against torch.utils.data."""
import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import distml
from distml.utils.data import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
                               random_split)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i * i

    def __len__(self):
        return self.n


class Count(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_tensor_dataset_items_and_length(rng):
    x, y = rng.standard_normal((5, 3)), np.arange(5)
    ours = TensorDataset(distml.tensor(x), distml.tensor(y))
    theirs = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert len(ours) == len(theirs) == 5
    for i in range(5):
        (a, b), (c, d) = ours[i], theirs[i]
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        assert b.item() == d.item() and b.dtype == distml.int64


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(distml.zeros(3, 2), distml.zeros(4))


def test_subset_and_concat():
    base = Squares(6)
    sub = Subset(base, [5, 0, 2])
    assert [sub[i] for i in range(len(sub))] == [25, 0, 4]
    ours = ConcatDataset([Squares(2), Squares(3)])
    theirs = tdata.ConcatDataset([Squares(2), Squares(3)])
    assert len(ours) == len(theirs) == 5
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-5, 5)] == [theirs[i] for i in range(-5, 5)]
    assert [x for x in (Squares(1) + Squares(2))] == [0, 0, 1]


def test_concat_errors():
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ConcatDataset([Squares(2)])[-3]
    with pytest.raises(ValueError, match="datasets should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="ConcatDataset does not support IterableDataset"):
        ConcatDataset([Count(2)])


def test_chain_dataset():
    chained = Count(2) + Count(3)
    assert isinstance(chained, ChainDataset)
    assert list(chained) == [0, 1, 0, 1, 2] and len(chained) == 5


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.5, 0.25, 0.25], [0.34, 0.33, 0.33]])
def test_random_split_sizes_match_torch_and_partition(lengths):
    data = Squares(10)
    ours = random_split(data, lengths, generator=distml.Generator().manual_seed(0))
    theirs = tdata.random_split(data, lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    indices = sorted(i for s in ours for i in s.indices)
    assert indices == list(range(10))


def test_random_split_reproducible_and_global_seed():
    a = random_split(Squares(20), [10, 10], generator=distml.Generator().manual_seed(3))
    b = random_split(Squares(20), [10, 10], generator=distml.Generator().manual_seed(3))
    assert a[0].indices == b[0].indices
    distml.manual_seed(1)
    c = random_split(Squares(20), [10, 10])
    distml.manual_seed(1)
    d = random_split(Squares(20), [10, 10])
    assert c[1].indices == d[1].indices and c[0].indices != a[0].indices


def test_random_split_errors():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        random_split(Squares(10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(Squares(10), [1.5, -0.5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Squares(2), [0.9, 0.05, 0.05])
