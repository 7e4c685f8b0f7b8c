"""The generic join context manager (PyTorch's torch.distributed.algorithms.join).

    with Join([ddp_model, zero_optimizer]):
        for batch in my_batches:       # ranks may run out at different iterations
            ...

A rank that leaves the loop early stays in `__exit__`, where each Joinable's JoinHook.main_hook
repeats the collectives of one iteration (with neutral values) for as long as some rank still
trains; when all have joined, each post_hook runs once.
"""
import warnings
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from distml import distributed as dist
from distml.tensor import Tensor

__all__ = ["JoinHook", "Joinable", "Join"]


class JoinHook:
    """The two entry points of a Joinable in the join context manager: `main_hook()`, called on a
    joined rank once per iteration the others still run, and `post_hook(is_last_joiner)`, once
    every rank has joined."""

    def main_hook(self):
        """Shadow one training iteration's collectives of the ranks that have not joined."""

    def post_hook(self, is_last_joiner):
        """Run after all ranks joined; is_last_joiner: this rank was among the last to join."""


class Joinable(ABC):
    """A class that can take part in Join: it implements `join_hook(**kwargs)`, `join_device`
    and `join_process_group`, and calls `Join.notify_join_context(self)` before the collectives
    of each iteration."""

    @abstractmethod
    def __init__(self):
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abstractmethod
    def join_hook(self, **kwargs):
        """The JoinHook of this Joinable; kwargs are the ones given to Join."""

    @property
    @abstractmethod
    def join_device(self):
        """The device of the join context manager's collectives."""

    @property
    @abstractmethod
    def join_process_group(self):
        """The process group of the join context manager's collectives."""


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config():
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


def _count(value, group, async_op=False):
    """all_reduce (sum) of one float32 `value`: the join protocol's messages."""
    t = Tensor(np.full(1, value, np.float32))
    work = dist.all_reduce(t, group=group, async_op=async_op)
    return work if async_op else t


class Join:
    """Context manager for training with uneven inputs across ranks.

        with Join([model], divide_by_initial_world_size=False):
            for x, y in batches_of_this_rank:
                loss_fn(model(x), y).backward()

    joinables: the participating Joinables (their hooks run in this order); enable=False turns
    the detection off; throw_on_early_termination=True makes every rank raise RuntimeError as
    soon as one has run out of inputs. Further keyword arguments go to each join_hook().
    """

    def __init__(self, joinables, enable=True, throw_on_early_termination=False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = joinables
        self._join_hooks = [joinable.join_hook(**kwargs) for joinable in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self):
        for i, joinable in enumerate(self._joinables):
            joinable._join_config = _JoinConfig(enable=self._enable,
                                                throw_on_early_termination=self._throw_on_early_termination,
                                                is_first_joinable=i == 0)

    def _extract_dist_info(self):
        process_group, device = None, None
        for joinable in self._joinables:
            if process_group is None:
                process_group = joinable.join_process_group
            elif process_group != joinable.join_process_group:
                raise ValueError("Using join context manager with multiple process groups")
            if device is None:
                device = joinable.join_device
        self._process_group = process_group
        self._rank = dist.get_rank(self._process_group)
        self._device = device

    def __enter__(self):
        pass

    def __exit__(self, type, value, traceback):
        """Run the main hooks until every rank has joined, then the post-hooks. Raises
        RuntimeError (on every rank) when throw_on_early_termination and a rank ran out."""
        if not self._enable or type:
            return  # an exception raised in the block propagates as it is
        all_procs_joined = False
        is_last_joiner = True
        i = 0
        warn_threshold = 1000
        while not all_procs_joined:
            if i > warn_threshold:
                warnings.warn(f"Detected uneven input skew of greater than {warn_threshold}. This means that rank "
                              f"{self._rank} has at least {warn_threshold} fewer inputs than other currently-"
                              "active ranks. This level of skew could lead to performance degradation during "
                              "training.", stacklevel=2)
            if self._get_num_nonjoined_procs() == 0:
                all_procs_joined = True
            else:
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for join_hook in self._join_hooks:
                    join_hook.main_hook()
                is_last_joiner = False
                i += 1
        for join_hook in self._join_hooks:
            join_hook.post_hook(is_last_joiner)

    def _get_num_nonjoined_procs(self):
        """Match the not-yet-joined ranks' notification (they send 1, joined ranks 0)."""
        return int(_count(0.0, self._process_group).item())

    def _notify_procs_to_terminate(self):
        _count(1.0, self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable):
        """Tell the join context manager that this rank has not joined yet; call before the
        iteration's collectives. With throw_on_early_termination, raise RuntimeError if some
        rank has joined. Returns the Work of the notification (its tensor, once waited, counts
        the ranks that have not joined) for the first Joinable, None otherwise."""
        if not hasattr(joinable, "_join_config"):
            raise AssertionError(f"Check that the {type(joinable)} constructor calls the ``Joinable`` constructor")
        join_config = joinable._join_config
        if not join_config.is_first_joinable or not join_config.enable:
            return None
        process_group = joinable.join_process_group
        work = _count(1.0, process_group, async_op=True)
        if join_config.throw_on_early_termination:
            if _count(0.0, process_group).item():
                raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
        return work
