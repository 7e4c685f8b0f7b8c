"""The rank side of distmlrun: find this process's place in the job, then run the user's program.

distmlrun starts every rank as::

    python .../distml/distributed/launch_rank.py [--gpus 0,1,2,3] (script.py | -m module) args...

which sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK (the node's index),
GROUP_WORLD_SIZE, ROLE_RANK and ROLE_WORLD_SIZE (torchrun's names) from whichever launcher
started the process (MASTER_ADDR and MASTER_PORT come from distmlrun), narrows
CUDA_VISIBLE_DEVICES to this rank's GPU when given --gpus, and runs the program as ``python script.py args`` would (``__name__ == "__main__"``, same
sys.argv and sys.path[0]). It is started by path and uses the standard library only, so nothing
of distml is imported before the program imports it. Under your own mpirun or srun,
``python -m distml.distributed.launch_rank script.py`` works too.

At exit each rank writes status-<rank>.json to DISTML_RUN_DIR (when set, as distmlrun does): exit
code, exception and last traceback lines, the collective in progress, pid, host; distmlrun reads
these for its report. When the program fails, the traceback is printed, then a line ``distmlrun:
rank R failed with exit code C``; then, if MPI is up, the flight recorders of this host dump and
MPI_Abort ends the whole job, so no rank is left waiting in a collective for one that is gone. Otherwise the rank exits with the code, and the launcher stops the
others (mpiexec does so when a rank exits non-zero; srun with --kill-on-bad-exit, as distmlrun runs it).
"""
import json
import os
import runpy
import socket
import sys
import time
import traceback

LAST_LINES = 20  # of the traceback, in the status file


def _tasks_on_node(tasks_per_node, node_id):
    """Tasks on node `node_id` from SLURM's compressed list: '2(x3),1' means 2, 2, 2, 1."""
    counts = []
    for item in tasks_per_node.split(","):
        count, _, repeat = item.partition("(x")
        counts += [int(count)] * (int(repeat.rstrip(")")) if repeat else 1)
    return counts[node_id]


def rank_environment(environ=None):
    """(rank, local_rank, world_size, local_world_size) of this process, from its launcher's variables.

    Open MPI (mpiexec, also under SLURM), then MPICH/Intel MPI (Hydra's PMI_*), then a SLURM job
    step (srun), then PyTorch's names (torchrun, or distmlrun's own), else a single process:
    (0, 0, 1, 1). Reads the environment only; MPI is not initialised.

        >>> rank_environment({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        ...                   "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"})
        (3, 1, 4, 2)
    """
    env = os.environ if environ is None else environ
    if "OMPI_COMM_WORLD_RANK" in env:
        names = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                 "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE")
        return tuple(int(env[name]) for name in names)
    if "PMI_RANK" in env:
        rank, size = int(env["PMI_RANK"]), int(env["PMI_SIZE"])
        # Hydra sets the local pair; other PMI launchers may not, so fall back to one rank per node.
        return rank, int(env.get("MPI_LOCALRANKID", 0)), size, int(env.get("MPI_LOCALNRANKS", 1))
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        # Only inside an srun step: a batch script also has SLURM_PROCID=0 but is one process.
        local_size = _tasks_on_node(env["SLURM_STEP_TASKS_PER_NODE"], int(env["SLURM_NODEID"]))
        return (int(env["SLURM_PROCID"]), int(env["SLURM_LOCALID"]),
                int(env["SLURM_STEP_NUM_TASKS"]), local_size)
    if "RANK" in env and "WORLD_SIZE" in env:
        world_size = int(env["WORLD_SIZE"])
        return (int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])),
                world_size, int(env.get("LOCAL_WORLD_SIZE", world_size)))
    return 0, 0, 1, 1


def node_environment(rank, local_rank, world_size, local_world_size, environ=None):
    """(GROUP_RANK, GROUP_WORLD_SIZE): this rank's node and the number of nodes, as torchrun
    names them. From srun's SLURM_NODEID, else from distmlrun's DISTML_NODE_SIZES (ranks per node,
    in order, "2,2,1"), else assuming the same number of ranks on every node.

        >>> node_environment(3, 0, 5, 2, {"DISTML_NODE_SIZES": "3,2"})
        (1, 2)
    """
    env = os.environ if environ is None else environ
    if "SLURM_STEP_ID" in env and "SLURM_NODEID" in env and "OMPI_COMM_WORLD_RANK" not in env \
            and "PMI_RANK" not in env:
        return int(env["SLURM_NODEID"]), int(env.get("SLURM_STEP_NUM_NODES", 1))
    sizes = [int(k) for k in env.get("DISTML_NODE_SIZES", "").split(",") if k]
    if sum(sizes) == world_size:  # and the node's count agrees with MPI's
        first = 0
        for node, size in enumerate(sizes):
            if rank < first + size:
                if size == local_world_size:
                    return node, len(sizes)
                break
            first += size
    return (rank - local_rank) // local_world_size, -(-world_size // local_world_size)


def visible_devices(cuda_visible_devices):
    """The entries of a CUDA_VISIBLE_DEVICES value: '0,1' -> ['0', '1']; '' and '-1' hide all: []."""
    devices = [d.strip() for d in cuda_visible_devices.split(",") if d.strip()]
    return [] if devices[:1] and devices[0].startswith("-") else devices


def _own_gpu(local_rank, node_gpus):
    """This rank's GPU: entry local_rank (wrapping round) of this node's CUDA_VISIBLE_DEVICES, or
    of `node_gpus` (what the launcher saw on its node) where the variable is unset; None if none."""
    devices = visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES", node_gpus))
    return devices[local_rank % len(devices)] if devices else None


def _exit_code(exc):
    """The status `python script.py` would exit with for a SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _collective_in_progress():
    """The flight recorder's oldest unfinished collective of this rank, or None."""
    recorder = sys.modules.get("distml.distributed.flight_recorder")
    if recorder is None:
        return None
    try:
        current = next((r for r in recorder.records() if r["state"] != "done"), None)
    except Exception:  # the recorder is off, or distml's core was never loaded
        return None
    return None if current is None else {**current, "description": recorder.describe(current)}


def write_status(rank, code, exc=None, environ=None):
    """Write status-<rank>.json to the run folder (DISTML_RUN_DIR, set by distmlrun; nothing
    without it): exit code, the exception and its last traceback lines, the collective in
    progress, pid, host. Atomic (a temporary, then rename), so the launcher never reads half."""
    env = os.environ if environ is None else environ
    folder = env.get("DISTML_RUN_DIR")
    if not folder:
        return None
    status = {"rank": rank, "exit_code": code, "pid": os.getpid(), "host": socket.gethostname(),
              "time": time.time(), "exception": None, "traceback": [],
              "collective": _collective_in_progress()}
    if exc is not None:
        status["exception"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        lines = "".join(traceback.format_exception(type(exc), exc, _program_traceback(exc))).splitlines()
        status["traceback"] = lines[-LAST_LINES:]
    path = os.path.join(folder, f"status-{rank}.json")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(f"{path}.{os.getpid()}.tmp", "w") as f:
            json.dump(status, f, indent=1, default=str)
        os.replace(f"{path}.{os.getpid()}.tmp", path)
    except OSError as e:
        print(f"distmlrun: rank {rank} could not write its status file {path}: {e}", file=sys.stderr)
        return None
    return path


def _abort_mpi(code):
    """MPI_Abort the job if this process initialised MPI (through mpi4py or distml's bindings):
    exiting would run MPI_Finalize, which waits for peers that may be waiting for this rank.
    With distml's process group up, its flight recorders dump first."""
    try:
        import mpi4py
        if "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.initialize = mpi4py.rc.finalize = False  # only ask, never start MPI here
        from mpi4py import MPI
    except ImportError:
        return
    if MPI.Is_initialized() and not MPI.Is_finalized():
        time.sleep(1)  # else srun may tear the step down before it forwards this rank's last lines
        group = sys.modules.get("distml.distributed.process_group")
        if group is not None and group.is_initialized():
            group._abort_job(code)
        MPI.COMM_WORLD.Abort(code)


def _program_traceback(exc):
    """exc's traceback without this module's and runpy's frames, as `python script.py` has it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, runpy.__file__,
                                                                  "<frozen runpy>"):
        tb = tb.tb_next
    return tb


def _print_program_traceback(exc):
    traceback.print_exception(type(exc), exc, _program_traceback(exc))


def _run(target, is_module, args):
    """Run the program as `python script.py args` or `python -m module args` would."""
    sys.argv = [target, *args]  # run_module replaces argv[0] with the module's path, as -m does
    if is_module:
        sys.path[0] = os.getcwd()
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    node_gpus = None
    if argv[:1] == ["--gpus"]:
        node_gpus, argv = argv[1], argv[2:]
    is_module = argv[:1] == ["-m"]
    if is_module:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: python -m distml.distributed.launch_rank [--gpus LIST] "
                 "(script.py | -m module) [args...]: expected a script or a module, got nothing")

    if not is_module and not os.path.isfile(argv[0]):
        print(f"{sys.executable}: can't open file {os.path.abspath(argv[0])!r}: "
              "[Errno 2] No such file or directory", file=sys.stderr)  # as python says it
        sys.exit(2)
    rank, local_rank, world_size, local_world_size = rank_environment()
    group_rank, group_world_size = node_environment(rank, local_rank, world_size, local_world_size)
    # torchrun's names; one role ("default"), so a rank's role rank is its rank.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(local_world_size), GROUP_RANK=str(group_rank),
                      GROUP_WORLD_SIZE=str(group_world_size), ROLE_RANK=str(rank),
                      ROLE_WORLD_SIZE=str(world_size), ROLE_NAME="default")
    if node_gpus is not None:
        gpu = _own_gpu(local_rank, node_gpus)
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu

    error = None
    try:
        _run(argv[0], is_module, argv[1:])
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        _print_program_traceback(exc)
        code, error = 1, exc
    write_status(rank, code, error)
    if code != 0:
        sys.stdout.flush()
        print(f"distmlrun: rank {rank} failed with exit code {code}", file=sys.stderr, flush=True)
        _abort_mpi(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
