"""The job's run folder: where each rank checks in before joining, writes its status at exit and
dumps its flight recorder, and where distmlrun reads them.

    DISTML_RUN_DIR=/scratch/run1 mpiexec -n 4 python train.py   # or let distmlrun choose one

distmlrun sets DISTML_RUN_DIR (a new folder under the temporary directory) for every job. Without
it, the folder is ``$TMPDIR/distml-<uid>/<job>`` where <job> is the launcher's job id (Open MPI's
PMIX_NAMESPACE, SLURM's job and step ids), or ``pid-<pid>`` of this process when none is known.
Across hosts, the launcher sees the files of other hosts only where the folder is shared.

Standard library only: launch_rank imports it before the program runs.
"""
import json
import os
import re
import socket
import tempfile
import time


def job_id(environ=None):
    """The launcher's id of this job, shared by its ranks, or None."""
    env = os.environ if environ is None else environ
    if env.get("PMIX_NAMESPACE"):
        return env["PMIX_NAMESPACE"]
    if env.get("SLURM_JOB_ID") and env.get("SLURM_STEP_ID"):
        return f"slurm-{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}"
    return None


def run_dir(create=True):
    """DISTML_RUN_DIR, else the default folder above (made if `create`)."""
    path = os.environ.get("DISTML_RUN_DIR")
    if not path:
        job = job_id() or f"pid-{os.getpid()}"
        path = os.path.join(tempfile.gettempdir(), f"distml-{os.getuid()}", re.sub(r"[^\w.@-]", "_", job))
    if create:
        os.makedirs(path, exist_ok=True)
    return path


def write_json(path, data):
    """Write data as JSON atomically (a temporary beside path, then rename), so a reader never
    sees half a file."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(temporary, path)


def read_json(path):
    """The JSON in path, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_in(folder, rank):
    """Record that `rank` reached init_process_group, and when (before MPI_Init, which cannot be
    bounded)."""
    write_json(os.path.join(folder, f"arrived-{rank}.json"),
               {"rank": rank, "job": job_id(), "pid": os.getpid(), "host": socket.gethostname(),
                "time": time.time()})


def checked_in(folder, local=False):
    """The check-ins ({rank, job, pid, host}) of this job's ranks in folder (a reused folder may
    hold older jobs'); local: only those of this host."""
    entries = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        entry = read_json(os.path.join(folder, name)) if re.fullmatch(r"arrived-\d+\.json", name) else None
        if entry is not None and entry.get("job") == job_id() and (
                not local or entry.get("host") == socket.gethostname()):
            entries.append(entry)
    return entries


def arrived(folder):
    """The ranks of this job that checked in to folder."""
    return {entry["rank"] for entry in checked_in(folder)}
