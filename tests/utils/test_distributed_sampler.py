"""DistributedSampler against PyTorch's: identical without shuffling, same semantics with it."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch.utils.data

from distml.utils.data.distributed import DistributedSampler

SIZES = [0, 1, 2, 5, 7, 10, 16]
REPLICAS = [1, 2, 3, 4]


def shards(n, num_replicas, cls=DistributedSampler, **kwargs):
    return [list(cls(range(n), num_replicas=num_replicas, rank=r, **kwargs))
            for r in range(num_replicas)]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_replicas", REPLICAS)
@pytest.mark.parametrize("n", SIZES)
def test_no_shuffle_identical_to_torch(n, num_replicas, drop_last):
    ours = shards(n, num_replicas, shuffle=False, drop_last=drop_last)
    theirs = shards(n, num_replicas, torch.utils.data.DistributedSampler, shuffle=False,
                    drop_last=drop_last)
    assert ours == theirs
    for r in range(num_replicas):
        mine = DistributedSampler(range(n), num_replicas, r, shuffle=False, drop_last=drop_last)
        torchs = torch.utils.data.DistributedSampler(range(n), num_replicas, r, shuffle=False,
                                                     drop_last=drop_last)
        assert (len(mine), mine.num_samples, mine.total_size) == \
               (len(torchs), torchs.num_samples, torchs.total_size)


@pytest.mark.parametrize("num_replicas", REPLICAS)
@pytest.mark.parametrize("n", [1, 5, 7, 10, 16])
def test_shuffle_covers_once_then_pads_by_wrapping(n, num_replicas):
    parts = shards(n, num_replicas, shuffle=True, seed=3)
    total = -(-n // num_replicas) * num_replicas
    assert all(len(p) == total // num_replicas for p in parts)
    # Rank r holds position r, r + R, ... of the padded list: rebuild it.
    padded = [parts[i % num_replicas][i // num_replicas] for i in range(total)]
    assert sorted(padded[:n]) == list(range(n))  # a permutation of the dataset
    assert padded[n:] == (padded[:n] * num_replicas)[:total - n]  # then its start again
    torch_lens = [len(p) for p in shards(n, num_replicas, torch.utils.data.DistributedSampler)]
    assert [len(p) for p in parts] == torch_lens


@pytest.mark.parametrize("num_replicas", REPLICAS)
@pytest.mark.parametrize("n", [1, 5, 7, 10, 16])
def test_shuffle_drop_last_disjoint_and_equal(n, num_replicas):
    parts = shards(n, num_replicas, shuffle=True, drop_last=True)
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) == n // num_replicas * num_replicas
    assert len({len(p) for p in parts}) == 1


def test_set_epoch_changes_order_seed_fixes_it():
    def order(epoch, seed=0, rank=0):
        s = DistributedSampler(range(100), num_replicas=2, rank=rank, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0) == order(0)  # every rank builds the same permutation from the same seed
    assert order(0) != order(1)
    assert order(0, seed=1) != order(0)
    assert order(1, seed=0) == order(0, seed=1)  # seed + epoch, as in PyTorch
    assert sorted(order(5, rank=0) + order(5, rank=1)) == list(range(100))
    assert list(DistributedSampler(range(100), 2, 0)) == order(0)  # shuffles by default


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("num_replicas", REPLICAS)
@pytest.mark.parametrize("n", SIZES)
def test_eval_mode_partitions_exactly(n, num_replicas, shuffle):
    parts = shards(n, num_replicas, shuffle=shuffle, pad=False)
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    samplers = [DistributedSampler(range(n), num_replicas, r, shuffle=shuffle, pad=False)
                for r in range(num_replicas)]
    assert [len(s) for s in samplers] == [len(p) for p in parts]
    if not shuffle:
        assert parts == [list(range(r, n, num_replicas)) for r in range(num_replicas)]


def test_invalid_rank_message_like_torch():
    for rank in (2, -1):
        with pytest.raises(ValueError) as ours:
            DistributedSampler(range(4), num_replicas=2, rank=rank)
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DistributedSampler(range(4), num_replicas=2, rank=rank)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=3)


def test_defaults_from_launcher_environment(monkeypatch):
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_STEP_ID", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    s = DistributedSampler(range(10), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (1, 0, list(range(10)))
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    s = DistributedSampler(range(10), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (3, 2, [2, 5, 8, 1])  # padded with 0, 1
    assert DistributedSampler(range(10), rank=0).num_replicas == 3


def test_under_two_ranks_with_the_process_group_and_dataloader(tmp_path):
    """Defaults from an initialised process group; padded shards cover everything, eval shards
    count each sample once; a DataLoader takes the sampler."""
    (tmp_path / "job.py").write_text(textwrap.dedent("""
        import json
        import distml.distributed as dist
        from distml.utils.data import DataLoader, DistributedSampler
        dist.init_process_group("mpi")
        data = list(range(11))
        for pad in (True, False):
            sampler = DistributedSampler(data, seed=1, pad=pad)
            sampler.set_epoch(2)
            mine = [v for x in DataLoader(data, batch_size=3, sampler=sampler) for v in x.tolist()]
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, (sampler.rank, sampler.num_replicas, mine))
            if dist.get_rank() == 0:
                print(json.dumps({"pad": pad, "everyone": everyone}))
        dist.destroy_process_group()
    """))
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", "job.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = {r["pad"]: r["everyone"] for r in map(json.loads, done.stdout.splitlines())}
    for pad, everyone in results.items():
        assert [(rank, size) for rank, size, _ in everyone] == [(0, 2), (1, 2)]
        shards = [mine for _, _, mine in everyone]
        assert shards == shards_of(11, 2, seed=1, epoch=2, pad=pad)
        seen = sorted(i for shard in shards for i in shard)
        assert seen == (sorted(list(range(11)) + [shards[0][0]]) if pad else list(range(11)))


def shards_of(n, num_replicas, epoch, **kwargs):
    samplers = [DistributedSampler(range(n), num_replicas, r, **kwargs) for r in range(num_replicas)]
    for s in samplers:
        s.set_epoch(epoch)
    return [list(s) for s in samplers]
