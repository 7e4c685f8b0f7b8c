"""ZeroRedundancyOptimizer (ZeRO stage 1): each rank keeps the optimizer state of about 1/N of the
parameters, updates them, and sends the updated values to the other ranks.

    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=distml.optim.Adam, lr=1e-3)
    loss.backward(); zero.step()     # each rank steps its partition; the partitions are broadcast

Standalone (overlap_with_ddp=False) it behaves as torch.distributed.optim.ZeroRedundancyOptimizer:
whole parameters are assigned to ranks greedily by size (largest first, each to the rank with
the fewest elements so far), each rank steps its own with a local `optimizer_class`, and every
rank broadcasts its parameters (one tensor each, or one flat bucket per rank with
parameters_as_bucket_view=True, whose parameters then view that bucket).

With overlap_with_ddp=True and DDP's hook from `ddp_comm_hooks.ddp_zero_hook.hook_with_zero_step`,
each DDP gradient bucket is cut into N equal slices instead: its reduce-scatter gives every rank
the averaged gradient of its slice, the rank steps that slice (elementwise optimizers give the
same result on a flat slice as on whole tensors), and an all-gather brings back the updated
parameters: the bytes of one allreduce, so ZeRO costs no extra communication.
"""
import copy
import warnings
from itertools import chain

import numpy as np

from distml import distributed as dist
from distml import optim
from distml.distributed.algorithms.join import Join, Joinable, JoinHook
from distml.optim import Optimizer
from distml.tensor import Tensor

__all__ = ["ZeroRedundancyOptimizer"]

# Optimizers that update each element from its own gradient and state (plus per-tensor scalars
# such as the step count), so that stepping a flat slice of a bucket equals stepping the tensors.
_ELEMENTWISE = (optim.SGD, optim.Adam, optim.AdamW, optim.Adamax, optim.Adagrad, optim.Adadelta, optim.RMSprop,
                optim.Rprop, optim.NAdam, optim.RAdam, optim.ASGD)


def _numel(p):
    return p.array.size


class _BucketShard:
    """This rank's slice of one DDP gradient bucket: elements [start, start + size) of the bucket's
    flat buffer, padded at the end so that all N slices have `size` elements.

    The bucket's parameters become views into one flat array, `flat` (padded likewise), so the
    all-gather of the updated slices lands in the parameters themselves: `values`, this rank's
    slice of `flat`, is the all-gather's input in place. `pieces` are the local optimizer's
    tensors: for each parameter overlapping the slice, a flat view of its part in `values` (so the
    step updates the parameter), with (parameter, first element, last element + 1) in `spans`."""

    def __init__(self, index, params, rank, world_size):
        numel = sum(_numel(p) for p in params)
        self.index, self.params, self.numel = index, params, numel
        self.size = -(-numel // world_size)
        self.start = rank * self.size
        self.flat = np.zeros(self.size * world_size, params[0].array.dtype)
        self.views = []
        offset = 0
        for p in params:
            self.views.append(self.flat[offset:offset + _numel(p)].reshape(p.array.shape))
            offset += _numel(p)
        self.adopt_params()
        self.values = self.flat[self.start:self.start + self.size]
        self.pieces, self.spans = [], []
        offset, stop = 0, self.start + self.size
        for p in params:
            lo, hi = max(offset, self.start), min(offset + _numel(p), stop)
            if lo < hi:
                self.pieces.append(Tensor(self.values[lo - self.start:hi - self.start]))
                self.spans.append((p, lo - offset, hi - offset))
            offset += _numel(p)
        self.reduce_work = self.gather_work = None
        self.grad = None  # this iteration's averaged slice of the gradient (a view into DDP's bucket)

    def adopt_params(self):
        """Make each parameter a view into `flat` again, with its current values (at the start, and
        after something replaced a parameter's memory, e.g. `p.data = ...`)."""
        for p, view in zip(self.params, self.views):
            if p.array is not view:
                view[...] = p.array
                p.data = Tensor(view)

    def finish_gather(self):
        """Wait for the all-gather; the parameters (views into `flat`) then hold every rank's update."""
        self.gather_work.wait()
        self.gather_work = None
        for p in self.params:
            p._version[0] += 1


class _ZeROJoinHook(JoinHook):
    """A joined rank's part of a standalone ZeRO step: step its partition and send it, as PyTorch
    does (with the gradients it holds). With overlap_with_ddp=True, DDP's join hook already runs
    the comm hook, which steps and all-gathers: nothing more to do."""

    def __init__(self, zero):
        self.zero = zero

    def main_hook(self):
        if not self.zero._overlap_with_ddp:
            self.zero.step()


class ZeroRedundancyOptimizer(Optimizer, Joinable):
    """Shard `optimizer_class`'s state over the ranks of `process_group` (the world when None):
    `ZeroRedundancyOptimizer(model.parameters(), optimizer_class=distml.optim.SGD, lr=0.1,
    momentum=0.9)`. `**defaults` go to the local optimizer. All parameters must share one dtype.

    `consolidate_state_dict(to=r)` (on every rank) gathers the shards' state on rank r, whose
    `state_dict()` is then that of one optimizer over all parameters; `load_state_dict` takes such
    a dict on every rank and keeps this rank's part.
    """

    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view=False,
                 overlap_with_ddp=False, **defaults):
        params = self._verify_and_init_params(params)
        self._verify_same_dense_param_type()
        if not dist.is_initialized():
            raise ValueError("Default process group has not been initialized, please make sure to call "
                             "init_process_group.")
        self.initialized = False
        Optimizer.__init__(self, params, defaults)
        Joinable.__init__(self)
        self._clear_cache()
        self._is_trainable_mask = self._get_is_trainable_mask()
        self.process_group = process_group
        self.world_size = dist.get_world_size(process_group)
        self.rank = dist.get_rank(process_group)
        self.global_rank = self._global_rank(self.rank)
        self._overlap_with_ddp = overlap_with_ddp
        self._optim_defaults = defaults
        self._optim_constructor = optimizer_class
        self.parameters_as_bucket_view = parameters_as_bucket_view
        self._buckets = []
        self._all_state_dicts = []
        self.optim = None
        if overlap_with_ddp:
            if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, _ELEMENTWISE)):
                raise ValueError("Using `overlap_with_ddp=True` requires an elementwise optimizer (one of "
                                 f"{', '.join(c.__name__ for c in _ELEMENTWISE)}), but got {optimizer_class}")
            if len(self.param_groups) != 1:
                raise RuntimeError("ZeroRedundancyOptimizer with `overlap_with_ddp=True` only supports a single "
                                   "parameter group")
            if parameters_as_bucket_view:
                warnings.warn("`parameters_as_bucket_view=True` will be ignored since `overlap_with_ddp=True`; "
                              "instead, DDP's gradient buckets are sharded", stacklevel=2)
            self._shards = None  # one _BucketShard per DDP bucket, made by hook_with_zero_step
        else:
            self._init_local_optimizer()
            self._build_param_buckets()
        self.initialized = True

    # ---- parameters and their partition ----
    def _verify_and_init_params(self, params):
        if isinstance(params, Tensor):
            raise TypeError("`params` argument should be an iterable of Tensors, but got "
                            f"{type(params).__module__}.{type(params).__name__}")
        try:
            all_params = list(params)
        except TypeError as error:
            raise TypeError("`params` argument should be an iterable of Tensors or dicts, but got "
                            f"{type(params).__name__}") from error
        if len(all_params) == 0:
            raise ValueError("ZeroRedundancyOptimizer got an empty parameter list")
        if all(isinstance(p, Tensor) for p in all_params):
            self._all_params = all_params
        elif all(isinstance(p, dict) for p in all_params):
            self._all_params = []
            for group in all_params:
                if "params" not in group:
                    raise ValueError("Each parameter group passed-in via `params` must have a 'params' key "
                                     "mapping to the parameters in the group")
                group_params = group["params"]
                self._all_params.extend([group_params] if isinstance(group_params, Tensor) else group_params)
        else:
            raise TypeError("`params` argument should be an iterable of Tensors or dicts")
        return all_params

    def _verify_same_dense_param_type(self):
        first = self._all_params[0]
        if first.is_sparse:
            raise ValueError(f"ZeroRedundancyOptimizer only supports using the same dense type for all parameters "
                             f"but got {first.type()}")
        for p in self._all_params[1:]:
            if p.type() != first.type():
                raise ValueError("ZeroRedundancyOptimizer only supports using the same dense type for all "
                                 f"parameters but got both {first.type()} and {p.type()}")

    def _get_is_trainable_mask(self):
        return [p.requires_grad for p in self._all_params]

    def _global_rank(self, group_rank):
        return group_rank if self.process_group is None else self.process_group.ranks[group_rank]

    def _clear_cache(self):
        self._partition_parameters_cache = []
        self._param_to_rank_cache = {}
        self._param_to_index_cache = {}
        self._index_to_param_cache = []

    def _partition_parameters(self):
        """For each rank, its param groups: copies of ours holding the parameters it updates.

        Each group's parameters, largest first, go to the rank with the fewest elements so far
        (counted over the groups before too), so adding a group leaves earlier assignments alone."""
        if not self._partition_parameters_cache:
            self._partition_parameters_cache = [[] for _ in range(self.world_size)]
            sizes = [0] * self.world_size
            for group in self.param_groups:
                per_rank = [[] for _ in range(self.world_size)]
                for p in sorted(group["params"], key=_numel, reverse=True):
                    rank = sizes.index(min(sizes))
                    per_rank[rank].append(p)
                    sizes[rank] += _numel(p)
                for rank, params in enumerate(per_rank):
                    local = {k: v for k, v in group.items() if k not in ("params", "param_names")}
                    local["params"] = params
                    self._partition_parameters_cache[rank].append(local)
        return self._partition_parameters_cache

    @property
    def _param_to_rank(self):
        if not self._param_to_rank_cache:
            for rank, groups in enumerate(self._partition_parameters()):
                for group in groups:
                    for p in group["params"]:
                        self._param_to_rank_cache[id(p)] = rank
        return self._param_to_rank_cache

    @property
    def _param_to_index(self):
        """Parameter (by id) -> its index in state_dict(): ours, counted over param_groups in order."""
        if not self._param_to_index_cache:
            self._param_to_index_cache = {id(p): i for i, p in enumerate(self._index_to_param)}
        return self._param_to_index_cache

    @property
    def _index_to_param(self):
        if not self._index_to_param_cache:
            self._index_to_param_cache = list(chain.from_iterable(g["params"] for g in self.param_groups))
        return self._index_to_param_cache

    def _init_local_optimizer(self):
        self.optim = self._optim_constructor(self._partition_parameters()[self.rank], **self._optim_defaults)
        self._sync_param_groups(self.optim.param_groups, self.param_groups)

    def _build_param_buckets(self):
        """parameters_as_bucket_view: one flat tensor per rank holding its trainable parameters,
        which become views into it (a frozen parameter gets its own memory back)."""
        if not self.parameters_as_bucket_view or self._overlap_with_ddp:
            return
        self._buckets = []
        for groups in self._partition_parameters():
            params = [p for g in groups for p in g["params"]]
            trainable = [p for p in params if p.requires_grad]
            for p in params:
                if not p.requires_grad:
                    p.data = Tensor(p.array.copy())
            dtype = self._all_params[0].array.dtype
            bucket = np.zeros(max(1, sum(_numel(p) for p in trainable)), dtype)
            offset = 0
            for p in trainable:
                view = bucket[offset:offset + _numel(p)].reshape(p.array.shape)
                view[...] = p.array
                p.data = Tensor(view)
                offset += _numel(p)
            self._buckets.append(Tensor(bucket))

    @staticmethod
    def _sync_param_groups(src_param_groups, dst_param_groups):
        """Copy every option but "params" from each source group to its destination group."""
        if len(src_param_groups) != len(dst_param_groups):
            raise AssertionError("Mismatch between number of source and destination parameter groups")
        for src, dst in zip(src_param_groups, dst_param_groups):
            for key, value in src.items():
                if key not in ("params", "param_names"):
                    dst[key] = value

    def add_param_group(self, param_group):
        """Add a group (on every rank, as the partition is recomputed on each)."""
        if self.initialized and self._overlap_with_ddp:
            raise RuntimeError("ZeroRedundancyOptimizer with `overlap_with_ddp=True` only supports a single "
                               "parameter group")
        super().add_param_group(param_group)
        if self.initialized:
            self._all_params.extend(p for p in self.param_groups[-1]["params"]
                                    if all(p is not q for q in self._all_params))
            self._is_trainable_mask = self._get_is_trainable_mask()
            self._clear_cache()
            groups = self._partition_parameters()[self.rank]
            if len(groups) == len(self.optim.param_groups) + 1:
                self.optim.add_param_group(groups[-1])
            self._build_param_buckets()

    # ---- the step ----
    def step(self, closure=None, **kwargs):
        """Step this rank's partition, then bring every rank's updated parameters to all ranks.
        With overlap_with_ddp=True the step already happened inside DDP's backward: warn, return None."""
        if self._overlap_with_ddp:
            warnings.warn("`step()` should not be included in the training loop when `overlap_with_ddp=True`",
                          stacklevel=2)
            return None
        loss = self._local_step(closure=closure, **kwargs)
        self._sync_params()
        return loss

    def join_hook(self, **kwargs):
        """The JoinHook for Join([ddp, zero]); takes no options."""
        return _ZeROJoinHook(self)

    @property
    def join_device(self):
        return self._all_params[0].device

    @property
    def join_process_group(self):
        return self.process_group

    def _local_step(self, closure=None, **kwargs):
        Join.notify_join_context(self)
        mask = self._get_is_trainable_mask()
        if mask != self._is_trainable_mask:
            warnings.warn("ZeroRedundancyOptimizer detected that the trainable parameters changed; rebuilding the "
                          "parameter buckets if enabled", stacklevel=3)
            self._build_param_buckets()
            self._is_trainable_mask = mask
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        loss = self.optim.step(**kwargs) if closure is None else self.optim.step(closure=closure, **kwargs)
        self._sync_param_groups(self.optim.param_groups, self.param_groups)
        return loss

    def _sync_params(self):
        """Every rank broadcasts its partition (all broadcasts in flight at once, then waited)."""
        handles = []
        for rank in range(self.world_size):
            if self.parameters_as_bucket_view:
                tensors = [self._buckets[rank]]
            else:
                tensors = [p for g in self._partition_parameters()[rank] for p in g["params"]]
            src = self._global_rank(rank)
            handles.extend(dist.broadcast(t, src=src, group=self.process_group, async_op=True) for t in tensors)
        for handle in handles:
            handle.wait()

    # ---- inside DDP's buckets (overlap_with_ddp=True) ----
    def _init_overlap(self, bucket_params):
        """Cut each DDP bucket (its parameters, in bucket order) into this rank's slice and make
        the local optimizer over all slices' pieces."""
        if self._shards is not None:
            raise RuntimeError("ZeroRedundancyOptimizer with `overlap_with_ddp=True` is already attached to "
                               "a DistributedDataParallel's hook")
        ours = {id(p) for p in self._all_params}
        in_buckets = {id(p) for params in bucket_params for p in params}
        if in_buckets != ours:
            raise ValueError("ZeroRedundancyOptimizer with `overlap_with_ddp=True` must be given exactly the "
                             f"parameters DDP reduces: {len(in_buckets - ours)} of DDP's are missing and "
                             f"{len(ours - in_buckets)} are not DDP's trainable parameters")
        self._shards = [_BucketShard(i, params, self.rank, self.world_size) for i, params in enumerate(bucket_params)]
        group = {k: v for k, v in self.param_groups[0].items() if k not in ("params", "param_names")}
        group["params"] = [piece for shard in self._shards for piece in shard.pieces]
        self.optim = self._optim_constructor([group], **self._optim_defaults)
        self._sync_param_groups(self.optim.param_groups, self.param_groups)

    def _reduce_bucket(self, index, buffer, storage=None):
        """Start the reduce-scatter (average) of bucket `index`'s flat gradient `buffer`. `storage`:
        the padded array `buffer` starts (DDP's bucket storage): the average of this rank's slice
        then lands in place, in the slice of `buffer` it averages (no copy of the bucket)."""
        shard = self._shards[index]
        if storage is None:  # a joined rank's buffer of zeros
            storage = np.zeros(shard.size * self.world_size, buffer.dtype)
            storage[:shard.numel] = buffer
        shard.grad = storage[shard.start:shard.start + shard.size]
        shard.reduce_work = dist.reduce_scatter_tensor(Tensor(shard.grad), Tensor(storage), op=dist.ReduceOp.AVG,
                                                       group=self.process_group, async_op=True)

    def _step_bucket(self, index, buffer):
        """Wait for bucket `index`'s reduce-scatter, step this rank's slice, start its all-gather;
        the averaged slice is in `buffer` (the rest keeps this rank's own gradients)."""
        shard = self._shards[index]
        if shard.reduce_work is None:
            return
        shard.reduce_work.wait()
        shard.reduce_work = None
        stop = min(shard.start + shard.size, shard.numel)
        if stop > shard.start and not np.shares_memory(shard.grad, buffer):
            buffer[shard.start:stop] = shard.grad[:stop - shard.start]
        shard.adopt_params()
        offset = 0
        for piece in shard.pieces:
            piece.grad = Tensor(shard.grad[offset:offset + piece.array.size])
            offset += piece.array.size
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self.optim.step()
        self._sync_param_groups(self.optim.param_groups, self.param_groups)
        for piece in shard.pieces:
            piece.grad = None
        shard.grad = None
        shard.gather_work = dist.all_gather_into_tensor(Tensor(shard.flat), Tensor(shard.values),
                                                        group=self.process_group, async_op=True)

    def _finish_overlap(self):
        """Wait for the all-gathers (after the last bucket): the parameters then hold every update."""
        for shard in self._shards:
            if shard.gather_work is not None:
                shard.finish_gather()

    def _check_overlap_initialized(self):
        if self._overlap_with_ddp and self._shards is None:
            raise RuntimeError("This method should not be called until this ZeroRedundancyOptimizer instance has "
                               "been fully initialized (by ddp_zero_hook.hook_with_zero_step)")

    # ---- state ----
    def _local_state(self):
        """What this rank sends to consolidate: the local state dict, or with overlap_with_ddp
        the state of each piece as (parameter index, first element, last element + 1, state)."""
        if not self._overlap_with_ddp:
            return self.optim.state_dict()
        pieces = []
        for shard in self._shards:
            for piece, (p, lo, hi) in zip(shard.pieces, shard.spans):
                if piece in self.optim.state:
                    pieces.append((self._param_to_index[id(p)], lo, hi, self.optim.state[piece]))
        return pieces

    def consolidate_state_dict(self, to=0):
        """Gather every rank's optimizer state on group rank `to` (call on all ranks)."""
        self._check_overlap_initialized()
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        states = [None] * self.world_size
        for rank in range(self.world_size):
            if rank == to:
                if self.rank == to:
                    states[rank] = copy.deepcopy(self._local_state())
                continue
            message = [self._local_state() if rank == self.rank else None]
            dist.broadcast_object_list(message, src=self._global_rank(rank), group=self.process_group)
            states[rank] = message[0]
        self._all_state_dicts = states if self.rank == to else []

    def state_dict(self):
        """The whole optimizer's state, as one optimizer over all parameters would have it; only
        on the rank that `consolidate_state_dict` gathered to (and as of that call)."""
        self._check_overlap_initialized()
        if not self._all_state_dicts:
            raise RuntimeError("Optimizer state has not been consolidated on this rank. Please call "
                               f"`consolidate_state_dict(to={self.rank})` on all ranks beforehand if you meant to "
                               "save the global state.")
        state_dict = super().state_dict()
        if self._overlap_with_ddp:
            state_dict["state"].update(self._assemble_pieces())
        else:
            for rank, local in enumerate(self._all_state_dicts):
                for local_group, group in zip(local["param_groups"], self._partition_parameters()[rank]):
                    for local_index, p in zip(local_group["params"], group["params"]):
                        if local_index in local["state"]:
                            state_dict["state"][self._param_to_index[id(p)]] = local["state"][local_index]
        state_dict["state"] = dict(sorted(state_dict["state"].items()))
        return state_dict

    def _assemble_pieces(self):
        """Each parameter's state from its pieces on the ranks: elementwise tensors (1-D, one value
        per element of the piece) are put together in the parameter's shape; the rest (the step
        count) is the same on every piece and taken from the first."""
        state = {}
        for pieces in self._all_state_dicts:
            for index, lo, hi, piece_state in pieces:
                p = self._index_to_param[index]
                entry = state.setdefault(index, {})
                for name, value in piece_state.items():
                    if isinstance(value, Tensor) and value.array.ndim == 1 and value.array.size == hi - lo:
                        if name not in entry:
                            entry[name] = Tensor(np.zeros(p.array.shape, value.array.dtype))
                        entry[name].array.reshape(-1)[lo:hi] = value.array
                    elif name not in entry:
                        entry[name] = copy.deepcopy(value)
        return state

    def load_state_dict(self, state_dict):
        """Load a state dict of the whole optimizer (from `state_dict()`, or a plain optimizer's over
        the same parameter groups) on every rank: each keeps the state of what it updates."""
        self._check_overlap_initialized()
        state = state_dict["state"]
        Optimizer.load_state_dict(self, {"state": {}, "param_groups": state_dict["param_groups"]})
        self._clear_cache()
        local = {"state": {}, "param_groups": []}
        if self._overlap_with_ddp:
            pieces = [(piece, span) for shard in self._shards for piece, span in zip(shard.pieces, shard.spans)]
            for i, (piece, (p, lo, hi)) in enumerate(pieces):
                saved = state.get(self._param_to_index[id(p)])
                if saved is not None:
                    local["state"][i] = {name: _slice_state(value, p, lo, hi) for name, value in saved.items()}
            local_groups = [list(range(len(pieces)))]
        else:
            count, local_groups = 0, []
            for group in self._partition_parameters()[self.rank]:
                local_groups.append(list(range(count, count + len(group["params"]))))
                for i, p in zip(local_groups[-1], group["params"]):
                    if self._param_to_index[id(p)] in state:
                        local["state"][i] = state[self._param_to_index[id(p)]]
                count += len(group["params"])
        for group, indices in zip(self.param_groups, local_groups):
            packed = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            packed["params"] = indices
            local["param_groups"].append(packed)
        self.optim.load_state_dict(local)
        self._sync_param_groups(self.param_groups, self.optim.param_groups)

    # ---- sharded state, for distml.distributed.checkpoint (no rank gathers everything) ----
    def _local_layout(self):
        """The local optimizer's parameters as (piece, (parameter, first element, last element + 1)),
        in its order, and its param groups as lists of positions in that order."""
        if self._overlap_with_ddp:
            pieces = [(piece, span) for shard in self._shards for piece, span in zip(shard.pieces, shard.spans)]
            return pieces, [list(range(len(pieces)))]
        pieces, groups = [], []
        for group in self._partition_parameters()[self.rank]:
            groups.append(list(range(len(pieces), len(pieces) + len(group["params"]))))
            pieces.extend((p, (p, 0, _numel(p))) for p in group["params"])
        return pieces, groups

    def sharded_state_dict(self):
        """This rank's part of the optimizer state, without communication: `(common, spans)`, where
        `common` is {"param_groups": as in state_dict()} and each span, for a parameter this rank
        updates, is (index as in state_dict(), lo, hi, the parameter's shape, flat, other): `flat`
        holds the elementwise state of elements lo..hi of the flattened parameter (1-D arrays),
        `other` the rest (the step count). `load_sharded_state_dict` takes it back on any world size.

            common, spans = zero.sharded_state_dict()
        """
        self._check_overlap_initialized()
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        spans = []
        for piece, (p, lo, hi) in self._local_layout()[0]:
            state = self.optim.state.get(piece)
            if not state:
                continue
            flat, other = {}, {}
            for name, value in state.items():
                if isinstance(value, Tensor) and value.array.ndim > 0 and value.array.shape == piece.array.shape:
                    flat[name] = value.array.reshape(-1)
                else:
                    other[name] = value
            spans.append((self._param_to_index[id(p)], lo, hi, tuple(p.array.shape), flat, other))
        return {"param_groups": Optimizer.state_dict(self)["param_groups"]}, spans

    def load_sharded_state_dict(self, common, read):
        """Load state saved by `sharded_state_dict` on any number of ranks (call on every rank):
        `read(index, lo, hi)` returns (flat, other) for elements lo..hi of parameter `index`, flat
        arrays of hi - lo elements, or None where the parameter has no state. Only this rank's
        ranges are asked for.

            zero.load_sharded_state_dict(common, lambda index, lo, hi: reader.read("optimizer", index, lo, hi))
        """
        self._check_overlap_initialized()
        Optimizer.load_state_dict(self, {"state": {}, "param_groups": common["param_groups"]})
        self._clear_cache()
        pieces, local_groups = self._local_layout()
        local, flats = {"state": {}, "param_groups": []}, {}
        for i, (piece, (p, lo, hi)) in enumerate(pieces):
            saved = read(self._param_to_index[id(p)], lo, hi)
            if saved is not None:
                flats[i], local["state"][i] = saved
        for group, indices in zip(self.param_groups, local_groups):
            packed = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            packed["params"] = indices
            local["param_groups"].append(packed)
        self.optim.load_state_dict(local)
        # The elementwise state goes in as read, cast only where it must be: the optimizer's load would
        # copy it once more, and these tensors are most of the state's memory.
        for i, flat in flats.items():
            piece = pieces[i][0]
            for name, value in flat.items():
                state = Tensor(value.reshape(piece.array.shape)).to(device=piece.device)
                self.optim.state[piece][name] = state.to(piece.dtype) if piece.is_floating_point() else state
        self._sync_param_groups(self.param_groups, self.optim.param_groups)


def _slice_state(value, param, lo, hi):
    """A piece's part of a parameter's state: elements lo..hi of a tensor shaped like the parameter."""
    if isinstance(value, Tensor) and value.array.shape == param.array.shape and value.array.ndim > 0:
        return Tensor(value.array.reshape(-1)[lo:hi].copy())
    return value
