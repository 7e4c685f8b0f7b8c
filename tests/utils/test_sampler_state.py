"""DistributedSampler / StatefulDataLoader state: stop mid-epoch on N ranks, resume on M.

The ranks are simulated in one process (one sampler per rank); the reference order is the
epoch's permutation, computed here from the documented seeding (NumPy PCG64 seeded by seed + epoch)."""
import numpy as np
import pytest

from distml.utils.data import DataLoader, DistributedSampler, RandomSampler, StatefulDataLoader, TensorDataset
import distml


def order(n, seed, epoch, shuffle=True):
    return np.random.default_rng(seed + epoch).permutation(n).tolist() if shuffle else list(range(n))


def samplers(data, world, **kwargs):
    return [DistributedSampler(data, num_replicas=world, rank=r, **kwargs) for r in range(world)]


def take(sampler_list, k):
    """Each rank takes k indices of a fresh iteration; the iterators are returned with them."""
    iters = [iter(s) for s in sampler_list]
    return [[next(it) for _ in range(k)] for it in iters], iters


@pytest.mark.parametrize("n,before,after,k", [(48, 4, 2, 5), (48, 4, 3, 3), (48, 4, 1, 7), (48, 2, 4, 10),
                                              (48, 3, 4, 0)])
def test_resume_on_another_world_size_sees_each_sample_once(n, before, after, k):
    data = list(range(n))
    first = samplers(data, before, seed=3)
    for s in first:
        s.set_epoch(2)
    taken, _ = take(first, k)
    states = [s.state_dict() for s in first]
    assert all(state == states[0] for state in states)
    assert states[0] == {"epoch": 2, "seed": 3, "shuffle": True, "dataset_length": n, "samples_consumed": k * before}
    perm = order(n, 3, 2)
    assert sorted(sum(taken, [])) == sorted(perm[:k * before])  # the first k*N positions of the order

    second = samplers(data, after, seed=99, shuffle=False)  # seed and shuffle come from the state
    for s in second:
        s.load_state_dict(states[0])
        s.set_epoch(2)
    rest = [list(s) for s in second]
    assert [len(s) for s in rest] == [(n - k * before) // after] * after
    for r in range(after):
        assert rest[r] == perm[k * before:][r::after]
    assert sorted(sum(taken, []) + sum(rest, [])) == data
    # The next epoch is whole again, with this world size's shards.
    for s in second:
        s.set_epoch(3)
    assert [list(s) for s in second] == [order(n, 3, 3)[r::after] for r in range(after)]


def test_padding_and_drop_last_of_the_rest():
    n, data = 11, list(range(11))
    first = samplers(data, 4)
    taken, _ = take(first, 1)  # 4 consumed, 7 left
    state = first[0].state_dict()
    perm = order(n, 0, 0)
    padded = samplers(data, 3)
    for s in padded:
        s.load_state_dict(state)
    assert [len(s) for s in padded] == [3, 3, 3]
    rest = [list(s) for s in padded]
    tail = perm[4:] + perm[4:6]  # 7 padded to 9 by wrapping round within the rest
    assert rest == [tail[r::3] for r in range(3)]
    seen = sum(taken, []) + sum(rest, [])
    assert set(seen) == set(data) and len(seen) == n + 2

    dropped = samplers(data, 3, drop_last=True)
    for s in dropped:
        s.load_state_dict(state)
    rest = [list(s) for s in dropped]
    assert rest == [perm[4:10][r::3] for r in range(3)]  # the last 1 of the 7 is not seen this epoch

    uneven = samplers(data, 3, pad=False)
    for s in uneven:
        s.load_state_dict(state)
    assert [list(s) for s in uneven] == [perm[4:][r::3] for r in range(3)]


def test_state_at_the_end_of_the_epoch_and_a_new_epoch():
    data = list(range(10))
    s = DistributedSampler(data, num_replicas=2, rank=0, shuffle=False)
    assert list(s) == [0, 2, 4, 6, 8]
    state = s.state_dict()
    assert state["samples_consumed"] == 10
    t = DistributedSampler(data, num_replicas=3, rank=1, shuffle=False)
    t.load_state_dict(state)
    assert len(t) == 0 and list(t) == []
    t.load_state_dict(dict(state, samples_consumed=4))
    t.set_epoch(1)  # another epoch than the saved one: start it from the beginning
    assert list(t) == [1, 4, 7, 0] and t.state_dict()["samples_consumed"] == 10


def test_load_errors():
    s = DistributedSampler(list(range(10)), num_replicas=2, rank=0)
    state = s.state_dict()
    with pytest.raises(ValueError, match="dataset of 10 samples, but this dataset has 9"):
        DistributedSampler(list(range(9)), num_replicas=2, rank=0).load_state_dict(state)
    with pytest.raises(KeyError, match="samples_consumed"):
        s.load_state_dict({"epoch": 0, "seed": 0, "shuffle": True, "dataset_length": 10})
    with pytest.raises(TypeError, match="expected a sampler with state_dict.*got RandomSampler"):
        StatefulDataLoader(list(range(10)), sampler=RandomSampler(list(range(10)))).state_dict()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_loader_counts_what_the_consumer_took(num_workers):
    """With workers prefetching batches ahead, the state is still at the batches taken."""
    n, batch = 48, 3
    data = TensorDataset(distml.arange(n))
    def loaders(world, **kwargs):
        return [StatefulDataLoader(data, batch_size=batch, num_workers=num_workers,
                                   sampler=DistributedSampler(data, num_replicas=world, rank=r, seed=5), **kwargs)
                for r in range(world)]
    first = loaders(4)
    iters = [iter(loader) for loader in first]
    seen = [int(i) for it in iters for _ in range(2) for i in next(it)[0]]
    states = [loader.state_dict() for loader in first]
    assert states[0] == states[-1] and states[0]["sampler"]["samples_consumed"] == 2 * batch * 4
    del iters
    second = loaders(2)
    for loader in second:
        loader.load_state_dict(states[0])
    assert len(second[0]) == (n - 24) // 2 // batch
    batches = [list(loader) for loader in second]
    seen += [int(i) for rank in batches for (x,) in rank for i in x]
    assert sorted(seen) == list(range(n))
    assert second[0].state_dict()["sampler"]["samples_consumed"] == n


def test_plain_dataloader_unchanged():
    data = list(range(8))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, num_replicas=2, rank=1, shuffle=False))
    assert [b.tolist() for b in loader] == [[1, 3], [5, 7]]
    assert not hasattr(loader, "state_dict")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_between_epochs_and_after_a_broken_loop(num_workers):
    data = list(range(12))
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=False)
    loader = StatefulDataLoader(data, batch_size=2, sampler=sampler, num_workers=num_workers)
    assert [b.tolist() for b in loader] == [[0, 2], [4, 6], [8, 10]]
    assert loader.state_dict()["sampler"]["samples_consumed"] == 12
    sampler.set_epoch(1)
    assert loader.state_dict()["sampler"] == {"epoch": 1, "seed": 0, "shuffle": False, "dataset_length": 12,
                                              "samples_consumed": 0}
    it = iter(loader)
    next(it)
    assert loader.state_dict()["sampler"]["samples_consumed"] == 4
    sampler.set_epoch(2)  # the loop was left with batches prefetched; the new epoch has taken none
    assert loader.state_dict()["sampler"]["samples_consumed"] == 0
