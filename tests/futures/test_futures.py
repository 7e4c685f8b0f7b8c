"""distml.futures against torch.futures: results, chaining, errors, collect_all."""
import pytest
import torch

import distml
from distml.futures import Future, collect_all, wait_all


@pytest.mark.parametrize("make", [Future, torch.futures.Future], ids=["distml", "torch"])
def test_set_result_then_wait_value(make):
    fut = make()
    assert not fut.done()
    chained = fut.then(lambda f: f.value() + 1).then(lambda f: f.value() * 10)
    fut.set_result(3)
    assert fut.done() and fut.wait() == 3 and fut.value() == 3
    assert chained.wait() == 40
    late = fut.then(lambda f: f.value() - 1)  # on a completed Future the callback runs at once
    assert late.done() and late.wait() == 2


@pytest.mark.parametrize("make", [Future, torch.futures.Future], ids=["distml", "torch"])
def test_errors(make):
    fut = make()
    fut.set_result(1)
    with pytest.raises(RuntimeError):
        fut.set_result(2)
    failing = make()
    child = failing.then(lambda f: f.value() + 1)
    failing.set_exception(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        failing.wait()
    with pytest.raises(RuntimeError, match="error when running the callback: ValueError: boom"):
        child.wait()
    raising = make()
    bad = raising.then(lambda f: 1 / 0)
    raising.set_result(0)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        bad.wait()


@pytest.mark.parametrize("module", [distml.futures, torch.futures], ids=["distml", "torch"])
def test_collect_all_and_wait_all(module):
    a, b = module.Future(), module.Future()
    both = module.collect_all([a, b])
    a.set_result("x")
    assert not both.done()
    b.set_result("y")
    assert [f.value() for f in both.wait()] == ["x", "y"]
    c, d = module.Future(), module.Future()
    c.set_result(1)
    d.set_result(2)
    assert module.wait_all([c, d]) == [1, 2]


def test_add_done_callback_and_annotation():
    fut, seen = Future(), []
    fut.add_done_callback(lambda f: seen.append(f.value()))
    fut.set_result(5)
    fut.add_done_callback(lambda f: seen.append(f.value() + 1))
    assert seen == [5, 6]
    assert Future[distml.Tensor] is not None  # Future is generic, as torch.futures.Future[torch.Tensor]


def test_value_before_completion_raises():
    with pytest.raises(RuntimeError, match="not completed"):
        Future().value()
    with pytest.raises(RuntimeError, match="nothing will complete it"):
        Future().wait()
    with pytest.raises(TypeError, match="expects an exception"):
        Future().set_exception("not an exception")


def test_collect_all_fails_with_the_first_error():
    a, b = Future(), Future()
    both = collect_all([a, b])
    a.set_exception(KeyError("first"))
    with pytest.raises(KeyError, match="first"):
        both.wait()
    assert wait_all([]) == []
