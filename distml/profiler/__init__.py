"""torch.profiler for distml: time every op, backward node, optimizer step, DataLoader wait,
collective and `record_function` range on the CPU.

    from distml.profiler import profile, record_function, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with record_function("train_step"):
            loss_fn(model(x), y).backward()
            optimizer.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    prof.export_chrome_trace("trace.json")

Event names: a primitive's forward is "distml::<Primitive class>" ("distml::Conv2d"), a backward
node its `name()` ("Conv2dBackward0"), and torch's names for the rest
("Optimizer.step#SGD.step", "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__",
"ProfilerStep#3"); collectives are "mpi:<name>" ("mpi:all_reduce") with their bytes in args.
Under distmlrun each rank's trace has pid = rank; `merge_chrome_traces` puts ranks on one timeline.
"""
import contextlib
import enum
import json
import os
import socket
import sys
import time
import warnings

from distml.autograd import engine, function
from distml.profiler import _recorder
from distml.profiler._events import EventList, FunctionEvent, FunctionEventAvg, build_events

__all__ = ["ProfilerAction", "ProfilerActivity", "profile", "record_function", "schedule", "supported_activities",
           "tensorboard_trace_handler", "merge_chrome_traces", "EventList", "FunctionEvent", "FunctionEventAvg"]


class ProfilerActivity(enum.Enum):
    CPU = 0
    XPU = 1
    MTIA = 2
    CUDA = 3
    HPU = 4
    PrivateUse1 = 5


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


def supported_activities():
    """The activities this build can profile: {ProfilerActivity.CPU}."""
    return {ProfilerActivity.CPU}


def schedule(*, wait, warmup, active, repeat=0, skip_first=0, skip_first_wait=0):
    """torch.profiler.schedule: skip `skip_first` steps, then cycles of `wait` idle, `warmup` and
    `active` recorded steps (`repeat` cycles, 0 = until the profiler stops):
    `profile(schedule=schedule(wait=1, warmup=1, active=2), on_trace_ready=handler)`."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError(
            f"Invalid profiler schedule arguments. Got wait={wait} (need >= 0), warmup={warmup} (need >= 0), "
            f"active={active} (need > 0), repeat={repeat} (need >= 0), skip_first={skip_first} (need >= 0).")
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results", stacklevel=2)

    def schedule_fn(step):
        if step < 0:
            raise AssertionError(f"Step must be non-negative. Got {step}.")
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait != 0:
            step += wait
        num_steps = wait + warmup + active
        if repeat > 0 and step / num_steps >= repeat:
            return ProfilerAction.NONE
        mod_step = step % num_steps
        if mod_step < wait:
            return ProfilerAction.NONE
        if mod_step < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod_step < num_steps - 1 else ProfilerAction.RECORD_AND_SAVE

    return schedule_fn


def tensorboard_trace_handler(dir_name, worker_name=None, use_gzip=False):
    """An `on_trace_ready` that writes `<dir_name>/<worker_name>.<time_ns>.pt.trace.json`; the worker
    name defaults to "<hostname>_<pid>", with "_rank<r>" added under distmlrun."""
    if use_gzip:
        raise NotImplementedError("tensorboard_trace_handler: use_gzip=True is not supported")

    def handler_fn(prof):
        name = worker_name
        if not name:
            name = f"{socket.gethostname()}_{os.getpid()}"
            if _rank() is not None:
                name += f"_rank{_rank()}"
        os.makedirs(dir_name, exist_ok=True)
        prof.export_chrome_trace(os.path.join(dir_name, f"{name}.{time.time_ns()}.pt.trace.json"))

    return handler_fn


def _rank():
    """This process's rank in a distributed job (None outside one), without importing MPI."""
    pg = sys.modules.get("distml.distributed.process_group")
    if pg is not None and pg.is_initialized():
        return pg.get_rank()
    rank = os.environ.get("RANK")
    return int(rank) if rank is not None and rank.isdigit() else None


class record_function(contextlib.ContextDecorator):
    """A named range in the profile, around a block or each call of a function:
    `with record_function("forward"): ...` or `@record_function("load")`. Free when no profiler runs."""

    def __init__(self, name):
        self.name = name
        self._open = []  # (recorder, start) per entered, unexited range: a decorated function may recurse

    def __enter__(self):
        self._open.append((_recorder.active, time.perf_counter_ns()))
        return self

    def __exit__(self, *exc):
        recorder, start = self._open.pop()
        if recorder is not None and recorder is _recorder.active:
            recorder.add(self.name, start, cat="user_annotation")
        return False


class profile:
    """torch.profiler.profile on the CPU: a context manager (or start()/step()/stop()) that records
    what runs in between; then `events()`, `key_averages()`, `export_chrome_trace(path)`."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, with_modules=False):
        for option, value in (("profile_memory", profile_memory), ("with_stack", with_stack),
                              ("with_flops", with_flops), ("with_modules", with_modules)):
            if value:
                raise NotImplementedError(f"distml.profiler.profile: {option}=True is not supported")
        self.activities = set(activities) if activities else supported_activities()
        for activity in self.activities - {ProfilerActivity.CPU, ProfilerActivity.CUDA}:
            raise NotImplementedError(f"distml.profiler.profile: {activity} is not supported (only CPU)")
        self.record_shapes = record_shapes
        self.schedule = schedule if schedule is not None else (lambda step: ProfilerAction.RECORD)
        self.record_steps = schedule is not None
        self.on_trace_ready = on_trace_ready
        self.step_num = 0
        self.current_action = self.schedule(0)
        self._recorder = None
        self._step_start = None
        self._events = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if ProfilerActivity.CUDA in self.activities:
            from distml import cuda
            if cuda.is_available():
                raise NotImplementedError("distml.profiler.profile: ProfilerActivity.CUDA (device time) is not "
                                          "supported; profile with ProfilerActivity.CPU")
            warnings.warn("CUDA is not available, disabling CUDA profiling", stacklevel=2)
            if ProfilerActivity.CPU not in self.activities:
                raise AssertionError("No activities specified for the profiler")
        self._enter(self.current_action)

    def step(self):
        """Mark the start of the next step: the schedule may start, save or stop a trace here."""
        self._close_step()
        previous = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        if previous in _RECORDING and (previous is ProfilerAction.RECORD_AND_SAVE or
                                       self.current_action not in _RECORDING):
            self._save()
        self._enter(self.current_action)

    def stop(self):
        self._close_step()
        if self._recorder is not None:
            self._save()

    def events(self):
        """The last saved trace's FunctionEvents, ordered by start."""
        if self._events is None:
            raise AssertionError("distml.profiler.profile: no trace was recorded yet (read it after stop() or "
                                 "in on_trace_ready)")
        return self._events

    def key_averages(self, group_by_input_shape=False):
        """Events averaged by name (and input shapes): `prof.key_averages().table(sort_by="cpu_time_total")`."""
        return self.events().key_averages(group_by_input_shape)

    def export_chrome_trace(self, path):
        """Write the last trace as Chrome trace JSON (pid = rank under distmlrun, else the process id)."""
        self.events().export_chrome_trace(path)

    def _enter(self, action):
        if action in _RECORDING:
            if self._recorder is None:
                self._start_recording()
            if self.record_steps:
                self._step_start = time.perf_counter_ns()

    def _close_step(self):
        if self._step_start is not None and self._recorder is not None:
            self._recorder.add(f"ProfilerStep#{self.step_num}", self._step_start, cat="user_annotation")
        self._step_start = None

    def _start_recording(self):
        if _recorder.active is not None:
            raise RuntimeError("Profiler is already enabled on this thread")
        recorder = self._recorder = _recorder._Recorder(self.record_shapes)
        self._start_ns = time.perf_counter_ns()
        function.Primitive.apply = classmethod(_timed_apply(recorder))
        engine.node_profiler = _timed_backward(recorder)
        _recorder.active = recorder

    def _save(self):
        recorder, self._recorder = self._recorder, None
        _recorder.active = None
        function.Primitive.apply = _PLAIN_APPLY
        engine.node_profiler = None
        self._events = build_events(recorder.events, self._start_ns)
        rank = _rank()
        pid = rank if rank is not None else os.getpid()
        self._events._trace = (self._start_ns + recorder.wall_offset_ns, pid,
                               f"rank {rank}" if rank is not None else f"process {pid}")
        if self.on_trace_ready is not None:
            self.on_trace_ready(self)


_PLAIN_APPLY = function.Primitive.__dict__["apply"]


def _timed_apply(recorder):
    """Primitive.apply, timed: each primitive's forward is one "distml::<class>" event."""
    plain = _PLAIN_APPLY.__func__
    perf_counter_ns = time.perf_counter_ns

    def apply(cls, *inputs, **params):
        start = perf_counter_ns()
        out = plain(cls, *inputs, **params)
        shapes = [list(getattr(t, "shape", ())) for t in inputs] if recorder.record_shapes else None
        recorder.add("distml::" + cls.__name__, start, None, shapes)
        return out

    return apply


def _timed_backward(recorder):
    """engine.node_profiler: a node's backward, timed as one event named like the node."""
    def timed(node):
        def backward(*grads):
            start = time.perf_counter_ns()
            try:
                return node.backward(*grads)
            finally:
                recorder.add(node.name(), start)
        return backward
    return timed


def merge_chrome_traces(paths, out_path):
    """Merge ranks' Chrome traces into one timeline (one process row per rank), each shifted onto
    the earliest trace's clock: `merge_chrome_traces(["trace_rank0.json", "trace_rank1.json"], "all.json")`."""
    traces = []
    for path in paths:
        with open(path) as f:
            traces.append(json.load(f))
    if not traces:
        raise ValueError("merge_chrome_traces: no traces given")
    base = min(trace["baseTimeNanoseconds"] for trace in traces)
    events = []
    for trace in traces:
        shift_us = (trace["baseTimeNanoseconds"] - base) / 1e3
        for event in trace["traceEvents"]:
            event = dict(event)
            if "ts" in event:
                event["ts"] += shift_us
            events.append(event)
    pids = [e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"]
    if len(pids) != len(set(pids)):
        raise ValueError(f"merge_chrome_traces: two traces have the same pid ({sorted(pids)}); each rank's "
                         "trace must come from a different rank")
    merged = {"schemaVersion": 1, "displayTimeUnit": "ms", "baseTimeNanoseconds": base, "traceEvents": events}
    with open(out_path, "w") as f:
        json.dump(merged, f)
    return out_path
