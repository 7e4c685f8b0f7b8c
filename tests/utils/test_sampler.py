"""Samplers against torch.utils.data's: identical where deterministic, same semantics where random."""
import collections

import numpy as np
import pytest
import torch.utils.data as tdata

import distml
from distml.utils.data import (BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler,
                               WeightedRandomSampler)


def test_sequential():
    assert list(SequentialSampler(range(5))) == list(tdata.SequentialSampler(range(5)))
    assert len(SequentialSampler(range(5))) == 5


@pytest.mark.parametrize("n,batch_size", [(10, 3), (9, 3), (1, 4), (0, 2)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_identical_to_torch(n, batch_size, drop_last):
    ours = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    theirs = tdata.BatchSampler(tdata.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_random_sampler_permutations_cover_and_differ():
    distml.manual_seed(0)
    sampler = RandomSampler(range(50))
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second
    distml.manual_seed(0)
    assert list(sampler) == first  # the global seed makes it reproducible


def test_random_sampler_generator():
    a = list(RandomSampler(range(20), generator=distml.Generator().manual_seed(5)))
    b = list(RandomSampler(range(20), generator=distml.Generator().manual_seed(5)))
    assert a == b and sorted(a) == list(range(20))


def test_random_sampler_num_samples_without_and_with_replacement():
    g = distml.Generator().manual_seed(0)
    drawn = list(RandomSampler(range(4), num_samples=10, generator=g))
    assert len(drawn) == 10
    assert sorted(drawn[:4]) == sorted(drawn[4:8]) == [0, 1, 2, 3]  # whole permutations, then a part
    assert len(set(drawn[8:])) == 2
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=3000, generator=g))
    counts = collections.Counter(drawn)
    assert set(counts) == {0, 1, 2} and all(900 < c < 1100 for c in counts.values())
    assert len(RandomSampler(range(3), replacement=True, num_samples=7)) == 7


def test_random_sampler_errors_match_torch():
    for cls in (RandomSampler, tdata.RandomSampler):
        with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=1"):
            cls(range(3), replacement=1)
        with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
            cls(range(3), num_samples=0)


def test_subset_random_sampler():
    indices = [10, 20, 30, 40]
    drawn = list(SubsetRandomSampler(indices, generator=distml.Generator().manual_seed(0)))
    assert sorted(drawn) == indices and len(SubsetRandomSampler(indices)) == 4


def test_weighted_random_sampler():
    g = distml.Generator().manual_seed(0)
    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g))
    counts = collections.Counter(drawn)
    assert 0 not in counts and 2.7 < counts[2] / counts[1] < 3.3
    drawn = list(WeightedRandomSampler(distml.tensor([1.0, 1.0, 1.0, 1.0]), 4, replacement=False, generator=g))
    assert sorted(drawn) == [0, 1, 2, 3]


def test_weighted_random_sampler_errors():
    with pytest.raises(ValueError, match=r"weights should be a 1d sequence but given weights have shape \(1, 2\)"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="replacement should be a boolean value"):
        WeightedRandomSampler([1.0], 2, replacement=1)
    with pytest.raises(RuntimeError, match="invalid multinomial distribution"):
        list(WeightedRandomSampler([-1.0, 2.0], 2))


def test_batch_sampler_errors_match_torch():
    for cls in (BatchSampler, tdata.BatchSampler):
        with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
            cls(range(3), 0, False)
        with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=1"):
            cls(range(3), 2, 1)


def test_numpy_generator_accepted():
    a = list(RandomSampler(range(10), generator=np.random.default_rng(1)))
    b = list(RandomSampler(range(10), generator=np.random.default_rng(1)))
    assert a == b
