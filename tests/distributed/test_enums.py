"""The enums Python shares with C++ (exported from csrc/bindings.cpp): ReduceOp as torch users
use it, and DISTML_ALLREDUCE_ALGO's names reaching the C++ Tuning. No MPI is initialised here."""
import pickle

import pytest
import torch.distributed

import distml.distributed as dist
from distml._backend import C
from distml.distributed import process_group

OURS = ["SUM", "PRODUCT", "MAX", "MIN", "AVG"]  # torch's BAND, BOR, BXOR and PREMUL_SUM are left out


def test_reduce_op_is_the_cpp_enum_with_torch_names():
    assert dist.ReduceOp is C.ReduceOp
    assert [op.name for op in dist.ReduceOp] == OURS
    for name in OURS:
        ours, theirs = getattr(dist.ReduceOp, name), getattr(torch.distributed.ReduceOp, name)
        assert isinstance(ours, dist.ReduceOp) and isinstance(theirs, torch.distributed.ReduceOp)
        assert ours.name == theirs.name == name
        assert pickle.loads(pickle.dumps(ours)) is ours
    assert dist.ReduceOp.SUM == 0  # as torch's (whose other values differ: AVG is 1 there)
    assert torch.distributed.ReduceOp.SUM == 0


@pytest.mark.parametrize("name", ["auto", "ring", "rd", "shm", "hier"])
def test_allreduce_algo_names_reach_the_cpp_tuning(name, monkeypatch):
    monkeypatch.setenv("DISTML_ALLREDUCE_ALGO", name)
    tuning = process_group._tuning()
    assert tuning.algo is C.Algo[name]
    copy = C.Tuning()
    copy.algo = tuning.algo  # through the C++ struct and back
    assert copy.algo is C.Algo[name]


def test_unknown_allreduce_algo_raises(monkeypatch):
    monkeypatch.setenv("DISTML_ALLREDUCE_ALGO", "tree")
    with pytest.raises(ValueError, match=r"DISTML_ALLREDUCE_ALGO must be one of \['auto', 'hier', 'rd', 'ring', 'shm'\], "
                                         r"got 'tree'"):
        process_group._tuning()
    with pytest.raises(TypeError):
        C.Tuning().algo = 1  # C++ takes the enum, not its number
