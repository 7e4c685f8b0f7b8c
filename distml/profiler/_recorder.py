"""The running profiler's event list and the wrappers that feed it (imported by optim, the
DataLoader and distributed, so it imports nothing of distml's).

While no profiler runs, `active` is None and each wrapper costs one global lookup."""
import functools
import threading
import time

active = None  # the running _Recorder, or None
_comm_args = {}  # extra args for the next collective event (DDP's bucket index)
on_comm_args = None  # set by distml.distributed: on_comm_args(args), then (None), around comm_args


class Event:
    """One timed range: perf_counter_ns start and end, the native thread id, the trace's category
    ("cpu_op", "user_annotation") and args."""
    __slots__ = ("name", "start", "end", "tid", "cat", "args", "input_shapes")

    def __init__(self, name, start, end, tid, cat, args=None, input_shapes=None):
        self.name, self.start, self.end, self.tid, self.cat = name, start, end, tid, cat
        self.args, self.input_shapes = args, input_shapes


class _Recorder:
    def __init__(self, record_shapes):
        self.record_shapes = record_shapes
        self.events = []
        # perf_counter_ns is cheap and monotonic; this offset puts its readings on the wall clock
        # (time.time_ns), which all ranks of a job share.
        self.wall_offset_ns = time.time_ns() - time.perf_counter_ns()

    def add(self, name, start, args=None, input_shapes=None, cat="cpu_op"):
        end = time.perf_counter_ns()
        self.events.append(Event(name, start, end, threading.get_native_id(), cat, args, input_shapes))


def record(name, fn, *args, **kwargs):
    """fn(*args, **kwargs) as one event named `name` when a profiler runs."""
    recorder = active
    if recorder is None:
        return fn(*args, **kwargs)
    start = time.perf_counter_ns()
    try:
        return fn(*args, **kwargs)
    finally:
        recorder.add(name, start, cat="user_annotation")


def ranged(name):
    """Decorator: each call of the function is one event named `name` while a profiler runs."""
    def wrap(fn):
        @functools.wraps(fn)
        def profiled(*args, **kwargs):
            if active is None:
                return fn(*args, **kwargs)
            return record(name, fn, *args, **kwargs)
        profiled.unprofiled = fn
        return profiled
    return wrap


def collective(name):
    """Decorator for a collective `fn(tensor_or_list, ...)`: one event named `name` whose args hold
    the bytes of its first argument (a tensor, or a list of them) and any `comm_args` set around it."""
    def wrap(fn):
        @functools.wraps(fn)
        def profiled(*args, **kwargs):
            recorder = active
            if recorder is None:
                return fn(*args, **kwargs)
            info = {"Collective name": name.split(":", 1)[1], "bytes": _nbytes(args[0]) if args else 0}
            info.update(_comm_args)
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                recorder.add(name, start, info)
        return profiled
    return wrap


def _nbytes(value):
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    array = getattr(value, "array", value)
    return int(getattr(array, "nbytes", 0))


class comm_args:
    """`with comm_args(bucket_index=3): dist.all_reduce(...)` adds those args to the collective's event."""

    def __init__(self, **args):
        self.args = args

    def __enter__(self):
        if on_comm_args is not None:
            on_comm_args(self.args)
        if active is not None:
            _comm_args.update(self.args)

    def __exit__(self, *exc):
        if on_comm_args is not None:
            on_comm_args(None)
        for key in self.args:
            _comm_args.pop(key, None)
