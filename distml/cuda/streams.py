"""CUDA streams and events, PyTorch's names over cupy.cuda.Stream / cupy.cuda.Event:

    s = distml.cuda.Stream()
    start, end = distml.cuda.Event(enable_timing=True), distml.cuda.Event(enable_timing=True)
    with distml.cuda.stream(s):
        start.record()
        y = x @ x
        end.record()
    end.synchronize()
    ms = start.elapsed_time(end)

distml's arrays are cupy's, so the work of every op goes to cupy's current stream, which
`distml.cuda.stream(s)` sets. Without a usable device the constructors raise RuntimeError and the
functions PyTorch's AssertionError, as PyTorch's CPU build does.
"""
from distml import _backend


def _cupy_for(what):
    reason = _backend.cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"distml.cuda.{what} requires CUDA support: distml cannot use CUDA: {reason}")
    return _backend.require_cupy()


def _device_of(device):
    from distml.cuda import _index
    return _index(device)


class Stream:
    """A CUDA stream on `device` (the current device by default): `distml.cuda.Stream(priority=-1)`;
    a lower priority number runs first."""

    def __init__(self, device=None, priority=0):
        cupy = _cupy_for("Stream")
        self.device_index = _device_of(device)
        with cupy.cuda.Device(self.device_index):
            self._stream = cupy.cuda.Stream(non_blocking=True, priority=priority)

    @classmethod
    def _wrap(cls, cupy_stream, device_index):
        stream = cls.__new__(cls)
        stream._stream, stream.device_index = cupy_stream, device_index
        return stream

    @property
    def device(self):
        from distml.device import device
        return device("cuda", self.device_index)

    @property
    def cuda_stream(self):
        """The cudaStream_t handle, as an int (0 for the default stream)."""
        return self._stream.ptr

    @property
    def priority(self):
        return self._stream.priority

    def wait_event(self, event):
        """Make work queued on this stream after now wait for `event`."""
        self._stream.wait_event(event._event)

    def wait_stream(self, stream):
        """Make work queued on this stream after now wait for what `stream` has queued so far."""
        self.wait_event(stream.record_event())

    def record_event(self, event=None):
        """Record `event` (a new Event by default) on this stream; returns it."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def query(self):
        """Whether all work queued on this stream has finished."""
        return self._stream.done

    def synchronize(self):
        """Wait for all work queued on this stream to finish."""
        self._stream.synchronize()

    def __eq__(self, other):
        return isinstance(other, Stream) and self.cuda_stream == other.cuda_stream \
            and self.device_index == other.device_index

    def __hash__(self):
        return hash((self.cuda_stream, self.device_index))

    def __repr__(self):
        return f"<distml.cuda.Stream device=cuda:{self.device_index} cuda_stream={self.cuda_stream:#x}>"


class Event:
    """A CUDA event: a marker in a stream's work, for ordering streams and timing them
    (`enable_timing=True`); `blocking=True` makes synchronize() sleep instead of spin."""

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        cupy = _cupy_for("Event")
        if interprocess:
            raise NotImplementedError("distml.cuda.Event(interprocess=True): events shared between processes are "
                                      "not supported")
        self.enable_timing = enable_timing
        self._event = cupy.cuda.Event(block=blocking, disable_timing=not enable_timing)

    def record(self, stream=None):
        """Record the event on `stream` (the current stream by default)."""
        self._event.record((stream or current_stream())._stream)

    def wait(self, stream=None):
        """Make work queued on `stream` (the current stream by default) after now wait for this event."""
        (stream or current_stream()).wait_event(self)

    def query(self):
        """Whether the work recorded before this event has finished."""
        return self._event.done

    def synchronize(self):
        """Wait for the work recorded before this event to finish."""
        self._event.synchronize()

    def elapsed_time(self, end_event):
        """Milliseconds from this event to `end_event`; both made with enable_timing=True and recorded."""
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        return _backend.cupy.cuda.get_elapsed_time(self._event, end_event._event)

    def __repr__(self):
        return f"<distml.cuda.Event enable_timing={self.enable_timing}>"


def current_stream(device=None):
    """The stream distml's work on `device` (the current device by default) goes to now."""
    cupy = _backend.require_cupy()
    index = _device_of(device)
    with cupy.cuda.Device(index):
        return Stream._wrap(cupy.cuda.get_current_stream(), index)


def default_stream(device=None):
    """The device's default (legacy null) stream."""
    cupy = _backend.require_cupy()
    return Stream._wrap(cupy.cuda.Stream.null, _device_of(device))


def set_stream(stream):
    """Make `stream` its device's current stream: later work there goes to it."""
    if stream is None:
        return
    cupy = _backend.require_cupy()
    with cupy.cuda.Device(stream.device_index):
        stream._stream.use()


class stream:
    """Run the work queued inside a `with` block on `stream` (and on its device); a no-op for None:
    `with distml.cuda.stream(s): y = model(x)`."""

    def __init__(self, stream):
        self.stream = stream
        self._entered = []

    def __enter__(self):
        if self.stream is None:
            return None
        cupy = _backend.require_cupy()
        device = cupy.cuda.Device(self.stream.device_index)
        device.__enter__()
        self.stream._stream.__enter__()
        self._entered.append(device)
        return self.stream

    def __exit__(self, *exc_info):
        if self._entered:
            self.stream._stream.__exit__(*exc_info)
            self._entered.pop().__exit__(*exc_info)
        return False
