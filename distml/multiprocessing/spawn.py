"""Start n processes that run `fn(i, *args)` and wait for them (torch.multiprocessing.spawn).

When one fails, the others are terminated and the parent raises: ProcessRaisedException with the
child's traceback when it raised, ProcessExitedException when it exited with a non-zero code or
died by a signal.
"""
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings

log = logging.getLogger(__name__)


class ProcessException(Exception):
    """A process started by spawn/start_processes failed: `error_index` is its index, `error_pid` its pid."""

    def __init__(self, msg, error_index, error_pid):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """The process raised an exception; the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """The process exited with a non-zero `exit_code` or was killed by a signal (`signal_name`)."""

    def __init__(self, msg, error_index, error_pid, exit_code, signal_name=None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid, self.exit_code, self.signal_name)


def _die_with_parent():
    """Ask Linux to send this process SIGINT when its parent dies, so no child outlives the job."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _wrap(fn, i, args, error_file):
    _die_with_parent()
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # SIGINT: the parent is gone or stopped us
    except Exception:
        with open(error_file, "w") as f:
            f.write(traceback.format_exc())
        sys.exit(1)


class ProcessContext:
    """The processes of one `start_processes(..., join=False)`: `processes`, `pids()`, `join()`."""

    def __init__(self, processes, error_files):
        self.error_files = error_files
        self.processes = processes
        self.sentinels = {process.sentinel: index for index, process in enumerate(processes)}

    def pids(self):
        return [int(process.pid) for process in self.processes]

    def _join_all(self, timeout):
        end = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0, end - time.monotonic()))

    def join(self, timeout=None, grace_period=None):
        """Wait until a process ends (at most `timeout` seconds). Returns True when all have ended
        successfully, False while some still run. When one has failed, terminate the others (after
        `grace_period` seconds, SIGTERM, then SIGKILL) and raise a ProcessException about it."""
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(self.sentinels.keys(), timeout=timeout)
        error_index = None
        for sentinel in ready:
            index = self.sentinels.pop(sentinel)
            process = self.processes[index]
            process.join()
            if process.exitcode != 0:
                error_index = index
                break
        if error_index is None:
            return not self.sentinels
        self._stop_all(grace_period)
        error = self._error(error_index)
        for error_file in self.error_files:  # any other process that raised meanwhile
            if os.path.exists(error_file):
                os.unlink(error_file)
        raise error

    def _stop_all(self, grace_period):
        if grace_period is not None:
            self._join_all(grace_period)
        for process in self.processes:
            if process.is_alive():
                log.warning("Terminating process %s via signal SIGTERM", process.pid)
                process.terminate()
        self._join_all(30 if grace_period is None else grace_period)
        for process in self.processes:
            if process.is_alive():
                log.warning("Unable to shutdown process %s via SIGTERM , forcefully exiting via SIGKILL",
                            process.pid)
                process.kill()
            process.join()

    def _error(self, index):
        process, error_file = self.processes[index], self.error_files[index]
        if not os.path.exists(error_file):
            code = process.exitcode
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"<Unknown signal {-code}>"
                return ProcessExitedException(f"process {index:d} terminated with signal {name}", error_index=index,
                                              error_pid=process.pid, exit_code=code, signal_name=name)
            return ProcessExitedException(f"process {index:d} terminated with exit code {code:d}",
                                          error_index=index, error_pid=process.pid, exit_code=code)
        with open(error_file) as f:
            trace = f.read()
        msg = f"\n\n-- Process {index:d} terminated with the following error:\n" + trace
        return ProcessRaisedException(msg, index, process.pid)


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run `fn(i, *args)` for i in range(nprocs), each in a new process started by `start_method`
    ("spawn", "fork" or "forkserver"). join=True waits for all (raising if one fails);
    join=False returns their ProcessContext.

        start_processes(train, args=(model,), nprocs=2, start_method="fork")
    """
    context = multiprocessing.get_context(start_method)
    processes, error_files = [], []
    for i in range(nprocs):
        # A path the child writes its traceback to when fn raises: the file exists only then.
        fd, error_file = tempfile.mkstemp(prefix="distml-errorfile-", suffix=".txt")
        os.close(fd)
        os.unlink(error_file)
        process = context.Process(target=_wrap, args=(fn, i, args, error_file), daemon=daemon)
        process.start()
        processes.append(process)
        error_files.append(error_file)
    process_context = ProcessContext(processes, error_files)
    if not join:
        return process_context
    while not process_context.join():
        pass


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run `fn(i, *args)` in `nprocs` new processes started by "spawn", as torch.multiprocessing.spawn:

        distml.multiprocessing.spawn(train, args=(model, queue), nprocs=4)

    `fn` must be defined at the top level of a module (the children import it). With join=True,
    wait for all; if one fails, the others are terminated and ProcessRaisedException (with the
    child's traceback) or ProcessExitedException is raised. join=False returns a ProcessContext.
    """
    if start_method != "spawn":
        warnings.warn(f"This method only supports start_method=spawn (got: {start_method}).\n"
                      "To use a different start_method use:\n\t\t distml.multiprocessing.start_processes(...)",
                      FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
