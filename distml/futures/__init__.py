"""torch.futures: a Future holds the result of work that may not have finished yet.

    fut = dist.all_reduce(t, async_op=True).get_future()
    halved = fut.then(lambda f: f.value()[0].div_(2))   # runs once fut completes
    halved.wait()                                       # t, summed over ranks and halved

distml's comm thread does not call back into Python, so a Future made by `Work.get_future()`
completes in the Python thread that first asks: `wait()`, or `done()` once the collective has
finished on the comm thread. `then` callbacks run there, in the order they were added, and a
chained Future is done as soon as its parent's callbacks have run.
"""
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Future", "collect_all", "wait_all"]


class Future(Generic[T]):
    """A value that becomes available later: `set_result` completes it; `wait` returns the value.

        fut = Future()
        fut.set_result(3)
        fut.then(lambda f: f.value() + 1).wait()   # 4
    """

    def __init__(self):
        self._done = False
        self._value = None
        self._exception = None
        self._callbacks = []
        self._complete = None  # called by wait() to drive the work behind an unfinished Future
        self._ready = None     # () -> whether _complete would return without blocking

    def done(self):
        """Whether the Future holds a result or an exception: True as soon as the work behind it
        has finished (completing it here, with its callbacks, if nobody waited yet)."""
        if not self._done and self._ready is not None and self._ready():
            self._drive()
        return self._done

    def wait(self):
        """Block until complete and return the value, or raise the exception it was completed with."""
        self._drive()
        if not self._done:
            raise RuntimeError("Future.wait(): the Future is not completed and nothing will complete it "
                               "(call set_result or set_exception)")
        return self.value()

    def _drive(self):
        """Run the work's completion once (blocking until it is done); its error completes self."""
        if self._done or self._complete is None:
            return
        complete, self._complete, self._ready = self._complete, None, None
        try:
            complete()
        except Exception as error:  # the work failed: this Future carries its error
            if not self._done:
                self.set_exception(error)

    def value(self):
        """The value of a completed Future (raising its exception); call after wait() or in a callback."""
        if not self._done:
            raise RuntimeError("Future.value(): the Future is not completed yet; call wait() first")
        if self._exception is not None:
            raise self._exception
        return self._value

    def then(self, callback):
        """A new Future completed with callback(self) once self completes; if callback raises, the
        new Future holds a RuntimeError naming that error (torch's wording)."""
        child = Future()
        child._complete, child._ready = self.wait, self.done

        def run(parent):
            try:
                result = callback(parent)
            except Exception as error:  # wrapped as torch does; the original is the __cause__
                wrapped = RuntimeError(f"Got the following error when running the callback: "
                                       f"{type(error).__name__}: {error}")
                wrapped.__cause__ = error
                child.set_exception(wrapped)
            else:
                child.set_result(result)

        self.add_done_callback(run)
        return child

    def add_done_callback(self, callback):
        """Run callback(self) when self completes (now, if it already has); its return value is dropped."""
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def set_result(self, result):
        """Complete the Future with `result` and run its callbacks."""
        self._finish(result, None)

    def set_exception(self, result):
        """Complete the Future with an exception: wait() and value() raise it."""
        if not isinstance(result, BaseException):
            raise TypeError(f"set_exception expects an exception, got {type(result).__name__}")
        self._finish(None, result)

    def _finish(self, value, exception):
        if self._done:
            raise RuntimeError("Future can only be marked completed once (set_result or set_exception "
                               "was already called)")
        self._done, self._value, self._exception = True, value, exception
        self._complete = self._ready = None
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


def collect_all(futures):
    """A Future completed with the list of `futures` once every one of them has completed.

        both = collect_all([fut0, fut1]); [f.value() for f in both.wait()]
    """
    futures = list(futures)
    combined = Future()
    combined._complete = lambda: [_wait_quietly(f) for f in futures]
    combined._ready = lambda: all([f.done() for f in futures])  # a list: every done() gets to complete its Future
    remaining = [len(futures)]

    def one_done(f):
        remaining[0] -= 1
        if combined._done:
            return
        if f._exception is not None:  # as torch: the first error completes the collection
            combined.set_exception(f._exception)
        elif remaining[0] == 0:
            combined.set_result(futures)

    if not futures:
        combined.set_result(futures)
    for f in futures:
        f.add_done_callback(one_done)
    return combined


def _wait_quietly(future):
    """Complete `future` by waiting; its error, if any, reaches collect_all through its callback."""
    try:
        future.wait()
    except Exception:
        pass


def wait_all(futures):
    """Wait for every Future and return their values in order (raising the first error)."""
    return [f.wait() for f in futures]
