"""Process groups and collectives over MPI, with torch.distributed's names.

    import distml.distributed as dist
    dist.init_process_group("mpi")            # under mpiexec, or alone as a world of size 1
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # in place on every rank
    work = dist.all_reduce(g, async_op=True)  # runs on the comm thread; overlap, then work.wait()

The algorithms live in C++ (csrc/comm/): on one host a shared-memory allreduce, across hosts
recursive doubling and a pipelined ring over MPI messages, and with several ranks on each host a
hierarchical allreduce (within each host, across hosts, within each host again).
DISTML_ALLREDUCE_ALGO (auto, shm, ring, rd, hier) forces one; DISTML_SHM=0 keeps everything on
MPI messages.

This module turns Tensors into contiguous numpy buffers, maps global ranks to group ranks, and
owns MPI's lifetime: init_process_group initialises MPI (MPI_THREAD_SERIALIZED: only one thread
calls MPI at a time) and finalises it at exit, or calls MPI_Abort when a collective failed or the
program died of an exception, so that the other ranks end instead of hanging.

Rank arguments (src, dst) are global ranks, as in torch.distributed. While async work is in
flight, leave MPI alone (no mpi4py calls of your own): only one thread may be inside MPI.

No hang (docs/distributed.md): init_process_group's timeout bounds MPI_Init and the join, naming
the ranks that never came; a rank that calls destroy_process_group or whose program ends tells
its peers, and a peer waiting for it in a collective raises within about a second, naming it.
Every collective is kept in the flight recorder (distml.distributed.flight_recorder).
"""
import atexit
import datetime
import os
import pickle
import sys
import threading
import time

import numpy as np

from distml._backend import C
from distml.profiler import _recorder
from distml.profiler._recorder import collective, ranged

DistBackendError = C.DistBackendError

DEFAULT_TIMEOUT_S = 300.0
# Both enums are C++'s (csrc/comm/reduce.h, algorithms.h), exported by csrc/bindings.cpp.
ReduceOp = C.ReduceOp  # an IntEnum: SUM, PRODUCT, MAX, MIN, AVG (a SUM on the wire, divided afterwards)
_REDUCE_OPS = frozenset(ReduceOp)
_ALGOS = C.Algo.__members__  # DISTML_ALLREDUCE_ALGO's names: auto, ring, rd, shm, hier


class ProcessGroup:
    """A set of ranks with its own communicator. `ranks` are their global ranks, in group order."""

    def __init__(self, pg, ranks, backend="mpi"):
        self._pg = pg  # None on ranks outside the group
        self.ranks = ranks
        self.backend = backend  # the name it was made with, as get_backend returns it

    def rank(self):
        return self._pg.rank if self._pg is not None else -1

    def size(self):
        return len(self.ranks) if self._pg is not None else -1

    def __repr__(self):
        return f"ProcessGroup(ranks={self.ranks}, rank={self.rank()})"


class Work:
    """Handle of an async collective: `wait()` blocks until it is done (raising its error) and
    finishes the Python side (copies back into strided or listed tensors, AVG's division).
    `result()` is the list of output tensors; `get_future()` a Future of it, done (and its
    callbacks run) at its first wait() or the first done() after the collective finished."""

    def __init__(self, work, keep, finish=None, result=None):
        self._work, self._keep, self._finish = work, keep, finish
        self._result = [] if result is None else result

    @ranged("mpi:wait")
    def wait(self):
        self._work.wait()
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
        self._keep = None
        return True

    def is_completed(self):
        return self._work.is_completed()

    def result(self):
        return self._result

    def get_future(self):
        """A distml.futures.Future completed with `result()` (e.g. [tensor] for all_reduce):
        `work.get_future().then(lambda fut: fut.value()[0].div_(n))`."""
        from distml.futures import Future
        future = Future()
        future._complete = lambda: (self.wait(), future.set_result(self._result))
        future._ready = self.is_completed
        return future


class _State:
    world = None          # ProcessGroup of every rank
    owns_mpi = False      # we called MPI_Init, so we call MPI_Finalize
    exit_hooked = False
    died = False          # an exception reached the top level
    exiting = False       # the program ends (at exit)
    run_rank = None       # this rank's files in the run folder (check-in, stacks) are named so
    inflight = []         # async Works, kept alive (with their buffers) until done


_state = _State()


def _mpi():
    from mpi4py import MPI  # loaded by distml._backend with rc.initialize = False
    return MPI


def _timeout_seconds(timeout):
    if timeout is None:
        return float(os.environ.get("DISTML_TIMEOUT", DEFAULT_TIMEOUT_S))
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return float(timeout)


def _tuning():
    tuning = C.Tuning()
    algo = os.environ.get("DISTML_ALLREDUCE_ALGO", "auto")
    if algo not in _ALGOS:
        raise ValueError(f"DISTML_ALLREDUCE_ALGO must be one of {sorted(_ALGOS)}, got {algo!r}")
    tuning.algo = _ALGOS[algo]
    return tuning


def is_available():
    """True: distml.distributed is built in (its MPI core comes with distml)."""
    return True


def is_mpi_available():
    """True: the 'mpi' backend (distml's collectives over MPI) is there."""
    return True


def is_gloo_available():
    """True: 'gloo' names distml's CPU backend, the same MPI process group as 'mpi'."""
    return True


def is_nccl_available():
    """False: distml has no GPU (NCCL) backend yet."""
    return False


def _check_backend(backend):
    """Accept torch's backend names that distml runs: 'mpi', 'gloo' (its CPU path, the same
    process group), also as 'cpu:gloo'; explain 'nccl'; reject the rest as torch does. Returns the
    name lower-cased, as get_backend reports it (None for None)."""
    if backend is None:
        return None
    parts = [part.partition(":")[2] or part for part in str(backend).lower().split(",")]
    if "nccl" in parts:
        raise RuntimeError(f"backend {backend!r}: distml's GPU backend (NCCL) does not exist yet; use "
                           "init_process_group('mpi') (or 'gloo'), whose collectives run on CPU tensors")
    for part in parts:
        if part not in ("mpi", "gloo"):
            raise ValueError(f"Invalid backend: {backend!r}; distml has 'mpi' and 'gloo' "
                             "(the same MPI process group)")
    return str(backend).lower()


def _check_launcher_world(size):
    """Raise where the launcher promised another world size than MPI's: above all srun without
    PMIx, which starts N singletons that would each train alone."""
    from distml.tools.doctor import launcher_world_size, singleton_problem
    expected, launcher = launcher_world_size()
    if expected is None or expected == size:
        return
    if size == 1:
        problem = singleton_problem(expected, launcher)
        if "srun --mpi=pmix" not in problem:
            problem += "; under SLURM, `srun --mpi=pmix`"
    else:
        problem = (f"{launcher} promised {expected} ranks but MPI's world has {size}: launch with one "
                   "launcher (distmlrun, mpirun or srun --mpi=pmix), not one inside another")
    raise RuntimeError(f"init_process_group: {problem}")


def is_initialized():
    return _state.world is not None


def init_process_group(backend="mpi", init_method=None, timeout=None, world_size=-1, rank=-1):
    """Join the job's world: rank and size come from MPI (any MPI launcher; without one, a world
    of size 1), so init_method is not needed (accepted for torch scripts that pass "env://").
    `timeout` (timedelta or seconds; default DISTML_TIMEOUT or 300 s) bounds how long a
    collective waits for a peer before raising DistBackendError naming it. backend: "mpi" or
    "gloo" (the same process group); "nccl" raises RuntimeError (no GPU backend yet). Raises
    RuntimeError when WORLD_SIZE (or srun's task count) disagrees with MPI's world size."""
    backend = _check_backend(backend) or "mpi"
    _join_world(timeout, world_size, rank)
    _state.world.backend = backend


def _join_world(timeout=None, world_size=-1, rank=-1, check_launcher=True):
    """init_process_group's work; check_launcher=False lets `distml doctor` start in a world the
    launcher got wrong, to report it."""
    if is_initialized():
        raise RuntimeError("trying to initialize the default process group twice")
    limit = _timeout_seconds(timeout)
    MPI = _mpi()
    if not MPI.Is_initialized():
        _init_mpi(MPI, limit)
        _state.owns_mpi = True
    if not _state.exit_hooked:
        _hook_exit()
    if check_launcher:
        _check_launcher_world(MPI.COMM_WORLD.Get_size())
    shared_memory = os.environ.get("DISTML_SHM", "1") != "0"
    # MPI_Init (a fence) has returned on every rank, so `limit` bounds the join from here.
    pg = C.ProcessGroup.world(limit, limit, _tuning(), shared_memory)
    for name, asked, got in (("world_size", world_size, pg.size), ("rank", rank, pg.rank)):
        if asked not in (-1, None) and asked != got:
            raise ValueError(f"init_process_group: {name}={asked} but MPI says {got}")
    _state.world = ProcessGroup(pg, list(range(pg.size)))
    _start_flight_recorder(pg.rank, pg.size)


def _hook_exit():
    previous = sys.excepthook

    def excepthook(*exc_info):
        _state.died = True
        previous(*exc_info)

    sys.excepthook = excepthook
    atexit.register(_at_exit)
    _state.exit_hooked = True


def _at_exit():
    MPI = _mpi()
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    if C.comm_failure() or (_state.died and MPI.COMM_WORLD.Get_size() > 1):
        # Peers may be blocked on us, and MPI_Finalize would wait for them: end the whole job.
        _abort_job(1)
    try:
        if is_initialized():
            _state.exiting = True  # peers still waiting for this rank hear that its program ended
            destroy_process_group()
        _clean_run_dir()
    finally:
        C.comm_shutdown()
        if _state.owns_mpi:
            MPI.Finalize()


def destroy_process_group(group=None):
    """Free a group's communicator; without a group, the world (and every collective after).
    Peers that wait for this rank in a collective of that group raise within about a second,
    naming it, instead of waiting for the timeout; so do they when this rank's program ends."""
    for work in _state.inflight:
        work.wait()
    _state.inflight = []
    if group is not None and group is not _state.world:
        if group._pg is not None:
            group._pg.free()
        return
    if _state.world is not None:
        _state.world._pg.free(_state.exiting)
        _state.world = None


class _WorldMeta(type):
    """Gives `group` and `GroupMember` the class property WORLD, as in torch.distributed."""

    @property
    def WORLD(cls):
        """The default (world) process group; None before init_process_group."""
        return _state.world


class group(metaclass=_WorldMeta):
    """`dist.group.WORLD`: the default group, accepted wherever `group=` is (the same as None)."""


class GroupMember(metaclass=_WorldMeta):
    """`dist.GroupMember.WORLD`: the same group as `dist.group.WORLD`; `NON_GROUP_MEMBER`: what
    new_group returns on ranks outside the new group (rank and size -1, collectives no-ops)."""
    NON_GROUP_MEMBER = ProcessGroup(None, [])


def _world():
    if _state.world is None:
        raise RuntimeError("the default process group has not been initialized: call "
                           "distml.distributed.init_process_group() first")
    return _state.world


def _group(group):
    return _world() if group is None else group


def new_group(ranks=None, backend=None):
    """A group of the given global ranks (all ranks when None). Every rank of the world must
    call it, members or not; non-members get `GroupMember.NON_GROUP_MEMBER`, as in torch.distributed."""
    backend = _check_backend(backend)
    world = _world()
    ranks = sorted(range(world.size()) if ranks is None else set(ranks))
    pg = world._pg.split(ranks)
    if pg is None:
        return GroupMember.NON_GROUP_MEMBER
    return ProcessGroup(pg, ranks, backend or world.backend)


def get_rank(group=None):
    """This process's rank in the group (-1 outside it); 0 when nothing is initialised."""
    if group is None and not is_initialized():
        return 0
    return _group(group).rank()


def get_world_size(group=None):
    if group is None and not is_initialized():
        return 1
    return _group(group).size()


def get_local_rank():
    """Rank among the processes on this host."""
    return _world()._pg.local_rank


def get_local_world_size():
    return _world()._pg.local_size


def get_backend(group=None):
    """The backend name the group was made with, lower-cased as torch reports it: "mpi" or "gloo".

        >>> init_process_group("gloo"); get_backend()
        'gloo'
    """
    return _group(group).backend


def _group_rank(group, global_rank, what):
    if global_rank not in group.ranks:
        raise ValueError(f"{what}: rank {global_rank} is not in the group (ranks {group.ranks})")
    return group.ranks.index(global_rank)


def _array(tensor, what="tensor"):
    """The numpy array behind a distml.Tensor (numpy arrays are taken as they are)."""
    data = tensor if isinstance(tensor, np.ndarray) else getattr(tensor, "array", None)
    if isinstance(data, np.ndarray):
        return data
    if data is not None and type(data).__module__.split(".")[0] == "cupy":
        raise TypeError(f"{what}: CUDA tensors are not supported by the MPI backend yet; move it to the CPU first")
    raise TypeError(f"{what} must be a distml.Tensor, got {type(tensor).__name__}")


class _Call:
    """The Python side of one collective on a group: the C-contiguous buffers C++ works on (kept
    alive until it is done) and the steps that finish it (AVG's division, copies back into
    strided or listed tensors).

        call = _call(group)  # None on ranks outside the group
        buf = call.output(_array(tensor))
        return call.launch(call.pg.broadcast(buf, root, async_op), async_op)
    """

    def __init__(self, group):
        self.group, self.pg = group, group._pg
        self._keep, self._finish, self._average = [], [], False

    def rank_of(self, global_rank, what):
        return _group_rank(self.group, global_rank, what)

    def reduce_op(self, op, array):
        """The op sent to C++; AVG travels as SUM and makes output() divide by the group size."""
        if not (isinstance(op, int) and op in _REDUCE_OPS):
            raise ValueError(f"op must be a ReduceOp ({', '.join(o.name for o in ReduceOp)}), got {op!r}")
        self._average = op == ReduceOp.AVG
        if self._average and array.dtype.kind != "f":
            raise TypeError(f"ReduceOp.AVG needs a floating dtype, got {array.dtype}")
        return ReduceOp.SUM if self._average else op

    def input(self, array):
        """array as a C-contiguous array for C++ to read."""
        return self.keep(np.ascontiguousarray(array))

    def output(self, array, finish=True):
        """A C-contiguous buffer for C++ to write array's result into. Once done it is divided
        (AVG) and copied back into array if that is strided; finish=False: array is left as it was."""
        buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        self._keep += [array, buf]
        if finish and self._average:
            size = self.group.size()
            self.then(lambda: np.divide(buf, size, out=buf))
        if finish and buf is not array:
            self.then(lambda: np.copyto(array, buf))
        return buf

    def keep(self, array):
        """Hold array until the collective is done; returns it."""
        self._keep.append(array)
        return array

    def then(self, step):
        """Run step once the collective is done."""
        self._finish.append(step)

    def launch(self, work, async_op, result=None):
        """Sync: finish now and return None. Async: a Work that finishes on wait(); `result` is its
        output tensors (Work.result())."""
        if not async_op:
            self._run_finish()
            return None
        handle = Work(work, self._keep, self._run_finish if self._finish else None, result)
        _state.inflight = [w for w in _state.inflight if not w.is_completed()] + [handle]
        return handle

    def _run_finish(self):
        for step in self._finish:
            step()


def _call(group):
    """A _Call on group (None: the world), or None on ranks outside it, where collectives do nothing."""
    group = _group(group)
    return _Call(group) if group._pg is not None else None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor across the group, in place on every rank."""
    if group is None and op == 0 and not async_op and _state.world is not None and _recorder.active is None:
        # The common case (a contiguous SUM on the world) is kept lean for latency-bound tensors.
        array = tensor if type(tensor) is np.ndarray else getattr(tensor, "array", None)
        if type(array) is np.ndarray and array.flags.c_contiguous:
            _state.world._pg.allreduce(array, ReduceOp.SUM, False)
            return None
    return _all_reduce(tensor, op, group, async_op)


@collective("mpi:all_reduce")
def _all_reduce(tensor, op, group, async_op):
    call = _call(group)
    if call is None:
        return None
    array = _array(tensor)
    op = call.reduce_op(op, array)
    return call.launch(call.pg.allreduce(call.output(array), op, async_op), async_op, [tensor])


@collective("mpi:broadcast")
def broadcast(tensor, src, group=None, async_op=False):
    """Copy tensor from global rank src to every rank of the group."""
    call = _call(group)
    if call is None:
        return None
    buf = call.output(_array(tensor))
    return call.launch(call.pg.broadcast(buf, call.rank_of(src, "broadcast"), async_op), async_op, [tensor])


@collective("mpi:reduce")
def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor onto global rank dst; other ranks' tensors are left unchanged."""
    call = _call(group)
    if call is None:
        return None
    array = _array(tensor)
    op = call.reduce_op(op, array)
    root = call.rank_of(dst, "reduce")
    buf = call.output(array, finish=call.group.rank() == root)
    return call.launch(call.pg.reduce(buf, op, root, async_op), async_op, [tensor])


def _check_shapes(what, expected, tensors):
    for i, t in enumerate(tensors):
        a = _array(t, f"{what}[{i}]")
        if a.shape != expected.shape or a.dtype != expected.dtype:
            raise ValueError(f"{what}[{i}]: expected {expected.dtype}{list(expected.shape)}, "
                             f"got {a.dtype}{list(a.shape)}")


def _check_count(what, tensors, group):
    if tensors is None or len(tensors) != group.size():
        got = None if tensors is None else len(tensors)
        raise ValueError(f"{what}: expected a list of {group.size()} tensors (one per rank), got {got}")


def _gathered(call, array, tensors):
    """One row per rank for array's gather, copied out into tensors once done."""
    gathered = call.keep(np.empty((call.group.size(),) + array.shape, array.dtype))
    call.then(lambda: [np.copyto(_array(t), gathered[i]) for i, t in enumerate(tensors)])
    return gathered


@collective("mpi:all_gather")
def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[i] = rank i's tensor, on every rank."""
    call = _call(group)
    if call is None:
        return None
    array = call.input(_array(tensor))
    _check_count("all_gather", tensor_list, call.group)
    _check_shapes("tensor_list", array, tensor_list)
    gathered = _gathered(call, array, tensor_list)
    return call.launch(call.pg.allgather(array, gathered, async_op), async_op, [tensor_list])


@collective("mpi:all_gather_into_tensor")
def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output = every rank's input concatenated in rank order (output has size() x its elements)."""
    call = _call(group)
    if call is None:
        return None
    array = call.input(_array(input_tensor, "input_tensor"))
    buf = call.output(_array(output_tensor, "output_tensor"))
    return call.launch(call.pg.allgather(array, buf, async_op), async_op, [output_tensor])


@collective("mpi:reduce_scatter")
def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """output = input_list[rank] reduced over all ranks."""
    call = _call(group)
    if call is None:
        return None
    out = _array(output, "output")
    _check_count("reduce_scatter", input_list, call.group)
    _check_shapes("input_list", out, input_list)
    return _reduce_scatter(call, out, np.stack([_array(t) for t in input_list]), op, async_op, output)


@collective("mpi:reduce_scatter_tensor")
def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """output = this rank's slice (in rank order) of input reduced over all ranks. When output is
    that slice of input itself, the reduction runs in input (no copy of it is made) and input's
    other slices are left holding partial results."""
    call = _call(group)
    if call is None:
        return None
    stacked = np.ascontiguousarray(_array(input, "input"))
    return _reduce_scatter(call, _array(output, "output"), stacked, op, async_op, output)


def _reduce_scatter(call, out, stacked, op, async_op, output):
    op = call.reduce_op(op, out)
    buf = call.output(out)
    return call.launch(call.pg.reduce_scatter(call.keep(stacked), buf, op, async_op), async_op, [output])


@collective("mpi:gather")
def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    """On global rank dst, gather_list[i] = rank i's tensor; other ranks pass no list."""
    call = _call(group)
    if call is None:
        return None
    array = call.input(_array(tensor))
    root = call.rank_of(dst, "gather")
    if call.group.rank() == root:
        _check_count("gather", gather_list, call.group)
        _check_shapes("gather_list", array, gather_list)
        gathered = _gathered(call, array, gather_list)
    else:
        if gather_list:
            raise ValueError(f"gather: gather_list must be empty on ranks other than dst={dst}")
        gathered = call.keep(np.empty(0, array.dtype))
    return call.launch(call.pg.gather(array, gathered, root, async_op), async_op)


@collective("mpi:scatter")
def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    """tensor = scatter_list[rank] from global rank src; other ranks pass no list."""
    call = _call(group)
    if call is None:
        return None
    out = _array(tensor)
    root = call.rank_of(src, "scatter")
    if call.group.rank() == root:
        _check_count("scatter", scatter_list, call.group)
        _check_shapes("scatter_list", out, scatter_list)
        stacked = np.stack([_array(t) for t in scatter_list])
    else:
        if scatter_list:
            raise ValueError(f"scatter: scatter_list must be empty on ranks other than src={src}")
        stacked = np.empty(0, out.dtype)
    buf = call.output(out)
    return call.launch(call.pg.scatter(call.keep(stacked), buf, root, async_op), async_op)


@collective("mpi:barrier")
def barrier(group=None, async_op=False):
    call = _call(group)
    return None if call is None else call.launch(call.pg.barrier(async_op), async_op)


@collective("mpi:isend")
def isend(tensor, dst, group=None, tag=0):
    """Send tensor to global rank dst; returns a Work. The receiver must expect the same shape and dtype."""
    return _send(tensor, dst, group, tag, True)


@collective("mpi:send")
def send(tensor, dst, group=None, tag=0):
    _send(tensor, dst, group, tag, False)


def _send(tensor, dst, group, tag, async_op):
    call = _call(group)
    if call is None:
        return None
    array = call.input(_array(tensor))
    return call.launch(call.pg.send(array, call.rank_of(dst, "send"), tag, async_op), async_op)


@collective("mpi:irecv")
def irecv(tensor, src=None, group=None, tag=0):
    """Receive into tensor from global rank src (any rank when None); returns a Work."""
    return _recv(tensor, src, group, tag, True)[0]


@collective("mpi:recv")
def recv(tensor, src=None, group=None, tag=0):
    """Receive into tensor; returns the global rank it came from."""
    return _recv(tensor, src, group, tag, False)[1]


def _recv(tensor, src, group, tag, async_op):
    call = _call(group)
    if call is None:
        return None, -1
    buf = call.output(_array(tensor))
    peer = -1 if src is None else call.rank_of(src, "recv")
    work, source = call.pg.recv(buf, peer, tag, async_op)
    return call.launch(work, async_op), (None if async_op else call.group.ranks[source()])


@collective("mpi:all_gather_object")
def all_gather_object(object_list, obj, group=None):
    """object_list[i] = rank i's obj (pickled; only for trusted peers, as in torch)."""
    call = _call(group)
    if call is None:
        return
    group = call.group
    if len(object_list) != group.size():
        raise ValueError(f"all_gather_object: expected a list of {group.size()} entries, got {len(object_list)}")
    data = np.frombuffer(pickle.dumps(obj), np.uint8)
    sizes = np.empty(group.size(), np.int64)
    group._pg.allgather(np.array([data.size], np.int64), sizes, False)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    gathered = np.empty((group.size(), padded.size), np.uint8)
    group._pg.allgather(padded, gathered, False)
    for i in range(group.size()):
        object_list[i] = pickle.loads(gathered[i, :sizes[i]].tobytes())


@collective("mpi:broadcast_object_list")
def broadcast_object_list(object_list, src=0, group=None):
    """Replace object_list's entries on every rank with those of global rank src (pickled)."""
    call = _call(group)
    if call is None:
        return
    group = call.group
    root = _group_rank(group, src, "broadcast_object_list")
    data = np.frombuffer(pickle.dumps(list(object_list)), np.uint8) if group.rank() == root else None
    size = np.array([0 if data is None else data.size], np.int64)
    group._pg.broadcast(size, root, False)
    buf = data.copy() if data is not None else np.empty(int(size[0]), np.uint8)
    group._pg.broadcast(buf, root, False)
    received = pickle.loads(buf.tobytes())
    if len(received) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {src} sent {len(received)} objects, "
                         f"this rank's list has {len(object_list)}")
    object_list[:] = received


def _init_mpi(MPI, limit):
    """MPI_Init_thread, bounded: it waits for every rank of the job, so a rank that stalls or dies
    before init would block it forever. Each rank checks in to the run folder first; once `limit`
    seconds passed with no rank checking in (ranks that start late under load do not count as
    missing while others still arrive) and MPI_Init has not returned, this rank prints which ranks
    never checked in and exits with 1 (the launcher then ends the job): no exception can reach
    Python from inside MPI_Init. With every rank checked in, MPI_Init gets at least 60 s."""
    from distml.distributed import launch_rank, run_dir
    try:
        rank, _, size, _ = launch_rank.rank_environment()
    except (KeyError, ValueError, IndexError):  # a launcher's variables in part (init checks them)
        rank, size = 0, 1
    if size == 1:  # no launcher (or none we can read): a world of one, MPI_Init waits for nobody
        C.mpi_init_thread(MPI.THREAD_SERIALIZED)
        return
    folder = run_dir.run_dir()
    run_dir.check_in(folder, rank)
    done, start = threading.Event(), time.time()

    def watchdog():
        while not done.wait(0.2):
            entries = run_dir.checked_in(folder)
            quiet = time.time() - max([start] + [entry.get("time", 0) for entry in entries])
            missing = sorted(set(range(size)) - {entry["rank"] for entry in entries})
            waited = limit if missing else max(limit, 60.0)
            if quiet > waited:
                break
        else:
            return
        who = (f"rank(s) {', '.join(map(str, missing))} to join (they never called init_process_group, "
               "or are stalled)") if missing else "the other ranks to join MPI_Init (they checked in)"
        error = DistBackendError(f"init_process_group: timed out after {waited:g} s in MPI_Init waiting for "
                                 f"{who} (dead or stalled; set the limit with init_process_group(timeout=...) "
                                 "or DISTML_TIMEOUT)")
        sys.stderr.write(f"distml.distributed.DistBackendError: {error}\n")
        sys.stderr.flush()
        launch_rank.write_status(rank, 1, error)
        os._exit(1)

    threading.Thread(target=watchdog, name="distml-init-watchdog", daemon=True).start()
    try:
        C.mpi_init_thread(MPI.THREAD_SERIALIZED)  # without the GIL, so the watchdog can run
    finally:
        done.set()


def _clean_run_dir():
    """At a normal exit, remove this rank's check-in and empty stacks file from the default run
    folder, and the folder once it is empty (a launcher's DISTML_RUN_DIR is the launcher's)."""
    from distml.distributed import run_dir
    if os.environ.get("DISTML_RUN_DIR") or _state.run_rank is None:
        return
    folder = run_dir.run_dir(create=False)
    for name in (f"arrived-{_state.run_rank}.json", f"stacks-{_state.run_rank}.txt"):
        path = os.path.join(folder, name)
        try:
            if name.startswith("arrived") or os.path.getsize(path) == 0:
                os.remove(path)
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass  # other ranks' files, or dumps to keep


def _start_flight_recorder(rank, size):
    """Record collectives, dump on SIGUSR1 and failures; check in where _init_mpi did not."""
    from distml.distributed import flight_recorder, run_dir
    if size > 1 and not _state.owns_mpi:
        run_dir.check_in(run_dir.run_dir(), rank)
    _state.run_rank = rank
    flight_recorder.enable(rank)
    _recorder.on_comm_args = _note_comm_args


def _note_comm_args(args):
    """DDP's bucket index (passed through profiler comm_args) for the flight recorder."""
    C.fr_set_bucket(-1 if args is None else int(args.get("bucket_index", -1)))


def _dump_before_abort(failure):
    """Dump this rank's flight recorder and make the other ranks on this host dump theirs, before
    MPI_Abort ends them; returns the run folder ('' when nothing was dumped)."""
    from distml.distributed import flight_recorder, run_dir
    if not is_initialized() or os.environ.get("DISTML_FLIGHT_RECORDER_SIZE", "1") == "0":
        return ""
    since = time.time()
    if not failure:  # a failed collective already dumped this rank, with its stacks
        flight_recorder.dump("uncaught exception")
    flight_recorder.signal_peers()
    folder = run_dir.run_dir(create=False)
    flight_recorder.wait_for_dumps(folder, since - 5, len(run_dir.checked_in(folder, local=True)), timeout=2)
    return folder


def _abort_job(code):
    """MPI_Abort the job after the flight recorders of this host dumped, saying why."""
    failure = C.comm_failure()
    folder = _dump_before_abort(failure)
    sys.stderr.write(f"distml.distributed: aborting the job ({failure or 'uncaught exception'})"
                     f"{f'; flight recorder dumps in {folder}' if folder else ''}\n")
    sys.stderr.flush()
    C.mpi_abort(code)
