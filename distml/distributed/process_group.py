"""Process groups and collectives over MPI, with torch.distributed's names.

    import distml.distributed as dist
    dist.init_process_group("mpi")            # under mpiexec, or alone as a world of size 1
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # in place on every rank
    work = dist.all_reduce(g, async_op=True)  # runs on the comm thread; overlap, then work.wait()

The algorithms live in C++ (csrc/comm/): on one host a shared-memory allreduce, across hosts
recursive doubling and a pipelined ring over MPI messages. DISTML_ALLREDUCE_ALGO (auto, shm,
ring, rd) forces one; DISTML_SHM=0 keeps everything on MPI messages.

This module turns Tensors into contiguous numpy buffers, maps global ranks to group ranks, and
owns MPI's lifetime: init_process_group initialises MPI (MPI_THREAD_SERIALIZED: only one thread
calls MPI at a time) and finalises it at exit, or calls MPI_Abort when a collective failed or the
program died of an exception, so that the other ranks end instead of hanging.

Rank arguments (src, dst) are global ranks, as in torch.distributed. While async work is in
flight, leave MPI alone (no mpi4py calls of your own): only one thread may be inside MPI.
"""
import atexit
import datetime
import enum
import os
import pickle
import sys

import numpy as np

from distml._backend import C
from distml.profiler import _recorder
from distml.profiler._recorder import collective, ranged

DistBackendError = C.DistBackendError

DEFAULT_TIMEOUT_S = 300.0
_ALGOS = {"auto": 0, "ring": 1, "rd": 2, "shm": 3}


class ReduceOp(enum.IntEnum):
    SUM = 0
    PRODUCT = 1
    MAX = 2
    MIN = 3
    AVG = 4  # a SUM on the wire, divided by the group size afterwards


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
    finishes the Python side (copies back into strided or listed tensors, AVG's division)."""

    def __init__(self, work, keep, finish=None):
        self._work, self._keep, self._finish = work, keep, finish

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


class _State:
    world = None          # ProcessGroup of every rank
    owns_mpi = False      # we called MPI_Init, so we call MPI_Finalize
    exit_hooked = False
    died = False          # an exception reached the top level
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
    MPI = _mpi()
    if not MPI.Is_initialized():
        MPI.Init_thread(MPI.THREAD_SERIALIZED)
        _state.owns_mpi = True
    if not _state.exit_hooked:
        _hook_exit()
    if check_launcher:
        _check_launcher_world(MPI.COMM_WORLD.Get_size())
    shared_memory = os.environ.get("DISTML_SHM", "1") != "0"
    pg = C.ProcessGroup.world(_timeout_seconds(timeout), _tuning(), shared_memory)
    for name, asked, got in (("world_size", world_size, pg.size), ("rank", rank, pg.rank)):
        if asked not in (-1, None) and asked != got:
            raise ValueError(f"init_process_group: {name}={asked} but MPI says {got}")
    _state.world = ProcessGroup(pg, list(range(pg.size)))


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
    failure = C.comm_failure()
    if failure or (_state.died and MPI.COMM_WORLD.Get_size() > 1):
        # Peers may be blocked on us, and MPI_Finalize would wait for them: end the whole job.
        sys.stderr.write(f"distml.distributed: aborting the job ({failure or 'uncaught exception'})\n")
        sys.stderr.flush()
        C.mpi_abort(1)
    try:
        if is_initialized():
            destroy_process_group()
    finally:
        C.comm_shutdown()
        if _state.owns_mpi:
            MPI.Finalize()


def destroy_process_group(group=None):
    """Free a group's communicator; without a group, the world (and every collective after)."""
    for work in _state.inflight:
        work.wait()
    _state.inflight = []
    if group is not None and group is not _state.world:
        if group._pg is not None:
            group._pg.free()
        return
    if _state.world is not None:
        _state.world._pg.free()
        _state.world = None


def _world():
    if _state.world is None:
        raise RuntimeError("the default process group has not been initialized: call "
                           "distml.distributed.init_process_group() first")
    return _state.world


def _group(group):
    return _world() if group is None else group


def new_group(ranks=None, backend=None):
    """A group of the given global ranks (all ranks when None). Every rank of the world must
    call it, members or not; non-members get a group whose rank() is -1."""
    backend = _check_backend(backend)
    world = _world()
    ranks = sorted(range(world.size()) if ranks is None else set(ranks))
    pg = world._pg.split(ranks)
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


def _buffer(array):
    """A C-contiguous buffer for array and the copy-back that finishes the op (None if not needed)."""
    if array.flags.c_contiguous:
        return array, None
    buf = np.ascontiguousarray(array)
    return buf, lambda: np.copyto(array, buf)


_WIRE_OPS = (0, 1, 2, 3, 0)  # indexed by ReduceOp; AVG travels as SUM


def _check_op(op, array):
    """The op sent to C++, and whether to divide by the group size afterwards (AVG)."""
    if not (isinstance(op, int) and 0 <= op <= 4):
        raise ValueError(f"op must be a ReduceOp ({', '.join(o.name for o in ReduceOp)}), got {op!r}")
    average = op == 4  # ReduceOp.AVG
    if average and array.dtype.kind != "f":
        raise TypeError(f"ReduceOp.AVG needs a floating dtype, got {array.dtype}")
    return _WIRE_OPS[op], average


def _launch(work, async_op, keep, *finishers):
    """Sync: run the finishers now. Async: a Work that runs them on wait()."""
    if not async_op:
        for step in finishers:
            if step is not None:
                step()
        return None
    steps = [f for f in finishers if f is not None]
    finish = (lambda: [f() for f in steps]) if steps else None
    handle = Work(work, keep, finish)
    _state.inflight = [w for w in _state.inflight if not w.is_completed()] + [handle]
    return handle


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor across the group, in place on every rank."""
    if group is None and op == 0 and not async_op and _state.world is not None and _recorder.active is None:
        # The common case (a contiguous SUM on the world) is kept lean for latency-bound tensors.
        array = tensor if type(tensor) is np.ndarray else getattr(tensor, "array", None)
        if type(array) is np.ndarray and array.flags.c_contiguous:
            _state.world._pg.allreduce(array, 0, False)
            return None
    return _all_reduce(tensor, op, group, async_op)


@collective("mpi:all_reduce")
def _all_reduce(tensor, op, group, async_op):
    group = _group(group)
    if group._pg is None:
        return None
    array = _array(tensor)
    wire_op, average = _check_op(op, array)
    buf, copy_back = _buffer(array)
    work = group._pg.allreduce(buf, wire_op, async_op)
    divide = (lambda: np.divide(buf, group.size(), out=buf)) if average else None
    return _launch(work, async_op, (array, buf), divide, copy_back)


@collective("mpi:broadcast")
def broadcast(tensor, src, group=None, async_op=False):
    """Copy tensor from global rank src to every rank of the group."""
    group = _group(group)
    if group._pg is None:
        return None
    array = _array(tensor)
    buf, copy_back = _buffer(array)
    work = group._pg.broadcast(buf, _group_rank(group, src, "broadcast"), async_op)
    return _launch(work, async_op, (array, buf), copy_back)


@collective("mpi:reduce")
def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor onto global rank dst; other ranks' tensors are left unchanged."""
    group = _group(group)
    if group._pg is None:
        return None
    array = _array(tensor)
    wire_op, average = _check_op(op, array)
    root = _group_rank(group, dst, "reduce")
    buf, copy_back = _buffer(array)
    work = group._pg.reduce(buf, wire_op, root, async_op)
    on_root = group.rank() == root
    divide = (lambda: np.divide(buf, group.size(), out=buf)) if average and on_root else None
    return _launch(work, async_op, (array, buf), divide, copy_back if on_root else None)


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


def _copy_out(gathered, tensors):
    return lambda: [np.copyto(_array(t), gathered[i]) for i, t in enumerate(tensors)]


@collective("mpi:all_gather")
def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[i] = rank i's tensor, on every rank."""
    group = _group(group)
    if group._pg is None:
        return None
    array = np.ascontiguousarray(_array(tensor))
    _check_count("all_gather", tensor_list, group)
    _check_shapes("tensor_list", array, tensor_list)
    gathered = np.empty((group.size(),) + array.shape, array.dtype)
    work = group._pg.allgather(array, gathered, async_op)
    return _launch(work, async_op, (array, gathered), _copy_out(gathered, tensor_list))


@collective("mpi:all_gather_into_tensor")
def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output = every rank's input concatenated in rank order (output has size() x its elements)."""
    group = _group(group)
    if group._pg is None:
        return None
    array = np.ascontiguousarray(_array(input_tensor, "input_tensor"))
    out = _array(output_tensor, "output_tensor")
    buf, copy_back = _buffer(out)
    work = group._pg.allgather(array, buf, async_op)
    return _launch(work, async_op, (array, out, buf), copy_back)


@collective("mpi:reduce_scatter")
def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """output = input_list[rank] reduced over all ranks."""
    group = _group(group)
    if group._pg is None:
        return None
    out = _array(output, "output")
    _check_count("reduce_scatter", input_list, group)
    _check_shapes("input_list", out, input_list)
    stacked = np.stack([_array(t) for t in input_list])
    return _reduce_scatter(group, out, stacked, op, async_op)


@collective("mpi:reduce_scatter_tensor")
def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """output = this rank's slice (in rank order) of input reduced over all ranks."""
    group = _group(group)
    if group._pg is None:
        return None
    stacked = np.ascontiguousarray(_array(input, "input"))
    return _reduce_scatter(group, _array(output, "output"), stacked, op, async_op)


def _reduce_scatter(group, out, stacked, op, async_op):
    wire_op, average = _check_op(op, out)
    buf, copy_back = _buffer(out)
    work = group._pg.reduce_scatter(stacked, buf, wire_op, async_op)
    divide = (lambda: np.divide(buf, group.size(), out=buf)) if average else None
    return _launch(work, async_op, (out, buf, stacked), divide, copy_back)


@collective("mpi:gather")
def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    """On global rank dst, gather_list[i] = rank i's tensor; other ranks pass no list."""
    group = _group(group)
    if group._pg is None:
        return None
    array = np.ascontiguousarray(_array(tensor))
    root = _group_rank(group, dst, "gather")
    if group.rank() == root:
        _check_count("gather", gather_list, group)
        _check_shapes("gather_list", array, gather_list)
        gathered = np.empty((group.size(),) + array.shape, array.dtype)
        finish = _copy_out(gathered, gather_list)
    else:
        if gather_list:
            raise ValueError(f"gather: gather_list must be empty on ranks other than dst={dst}")
        gathered, finish = np.empty(0, array.dtype), None
    work = group._pg.gather(array, gathered, root, async_op)
    return _launch(work, async_op, (array, gathered), finish)


@collective("mpi:scatter")
def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    """tensor = scatter_list[rank] from global rank src; other ranks pass no list."""
    group = _group(group)
    if group._pg is None:
        return None
    out = _array(tensor)
    root = _group_rank(group, src, "scatter")
    if group.rank() == root:
        _check_count("scatter", scatter_list, group)
        _check_shapes("scatter_list", out, scatter_list)
        stacked = np.stack([_array(t) for t in scatter_list])
    else:
        if scatter_list:
            raise ValueError(f"scatter: scatter_list must be empty on ranks other than src={src}")
        stacked = np.empty(0, out.dtype)
    buf, copy_back = _buffer(out)
    work = group._pg.scatter(stacked, buf, root, async_op)
    return _launch(work, async_op, (out, buf, stacked), copy_back)


@collective("mpi:barrier")
def barrier(group=None, async_op=False):
    group = _group(group)
    if group._pg is None:
        return None
    return _launch(group._pg.barrier(async_op), async_op, None)


@collective("mpi:isend")
def isend(tensor, dst, group=None, tag=0):
    """Send tensor to global rank dst; returns a Work. The receiver must expect the same shape and dtype."""
    return _send(tensor, dst, group, tag, True)


@collective("mpi:send")
def send(tensor, dst, group=None, tag=0):
    _send(tensor, dst, group, tag, False)


def _send(tensor, dst, group, tag, async_op):
    group = _group(group)
    if group._pg is None:
        return None
    array = np.ascontiguousarray(_array(tensor))
    work = group._pg.send(array, _group_rank(group, dst, "send"), tag, async_op)
    return _launch(work, async_op, array)


@collective("mpi:irecv")
def irecv(tensor, src=None, group=None, tag=0):
    """Receive into tensor from global rank src (any rank when None); returns a Work."""
    return _recv(tensor, src, group, tag, True)[0]


@collective("mpi:recv")
def recv(tensor, src=None, group=None, tag=0):
    """Receive into tensor; returns the global rank it came from."""
    return _recv(tensor, src, group, tag, False)[1]


def _recv(tensor, src, group, tag, async_op):
    group = _group(group)
    if group._pg is None:
        return None, -1
    array = _array(tensor)
    buf, copy_back = _buffer(array)
    peer = -1 if src is None else _group_rank(group, src, "recv")
    work, source = group._pg.recv(buf, peer, tag, async_op)
    handle = _launch(work, async_op, (array, buf), copy_back)
    return handle, (None if async_op else group.ranks[source()])


@collective("mpi:all_gather_object")
def all_gather_object(object_list, obj, group=None):
    """object_list[i] = rank i's obj (pickled; only for trusted peers, as in torch)."""
    group = _group(group)
    if group._pg is None:
        return
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
    group = _group(group)
    if group._pg is None:
        return
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
