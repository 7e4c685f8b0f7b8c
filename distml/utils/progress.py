"""Progress bars for training loops that may run under a launcher.

`progress_bar` is a tqdm bar that only rank 0 draws and that, when its stream is not a terminal (a
log file, or a pipe as under distmlrun, mpiexec or SLURM), draws at most every `LOG_INTERVAL` seconds
instead of once per step:

    from distml.utils.progress import progress_bar
    for images, labels in (bar := progress_bar(loader, desc="epoch 1")):
        loss = train_step(images, labels)
        bar.set_postfix(loss=f"{loss:.4f}")  # shown at the next due redraw
"""
import sys

from tqdm import tqdm

LOG_INTERVAL = 5.0  # seconds between draws into a file or pipe


class ProgressBar(tqdm):
    """tqdm whose set_postfix and set_description wait for the next due draw: tqdm draws at once by
    default (refresh=True), which ignores mininterval and writes one line per step into a log."""

    def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
        super().set_postfix(ordered_dict, refresh, **kwargs)

    def set_description(self, desc=None, refresh=False):
        super().set_description(desc, refresh)


def _is_terminal(file):
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _rank():
    """This process's global rank: the process group's once initialised, else the launcher's."""
    import distml.distributed as dist
    from distml.distributed.launch_rank import rank_environment
    return dist.get_rank() if dist.is_initialized() else rank_environment()[0]


def progress_bar(iterable=None, *, file=None, mininterval=None, delay=None, disable=False, **kwargs):
    """A ProgressBar over `iterable` on `file` (default sys.stderr), disabled on every rank but 0.

    Into a terminal it redraws every 0.1 s (tqdm's default); into anything else every LOG_INTERVAL
    seconds, and only once the loop has run that long, so short loops leave no lines in a log.
    `mininterval` and `delay` override those choices; other keywords are tqdm's.

        >>> bar = progress_bar(range(3), disable=True)
    """
    file = sys.stderr if file is None else file
    terminal = _is_terminal(file)
    if mininterval is None:
        mininterval = 0.1 if terminal else LOG_INTERVAL
    if delay is None:
        delay = 0.0 if terminal else LOG_INTERVAL
    if _rank() != 0:
        disable = True
    return ProgressBar(iterable, file=file, mininterval=mininterval, delay=delay, disable=disable, **kwargs)
