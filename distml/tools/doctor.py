"""`distml doctor`: is this machine, or this job, set up the way distml needs? Each finding is one
line; each problem says how to fix it. A single process exits with status 1 when it finds a problem;
in a job, rank 0 prints the report for every rank and all ranks exit with 0 (the launcher would
otherwise stop the job and print the report twice): read the problems from the report or --json.

    distml doctor                          # this process: build, MPI, threads, GPUs
    distmlrun -n 4 -m distml doctor        # and every rank of the job (also under mpirun or srun)
    distml doctor --json                   # the same findings for scripts
"""
import json
import os
import socket
import sys
import time

LAUNCHER_SIZES = (  # (environment variable, what set it): the world size a launcher promised
    ("OMPI_COMM_WORLD_SIZE", "mpiexec"),
    ("SLURM_STEP_NUM_TASKS", "srun"),
    ("PMI_SIZE", "the MPI launcher"),
    ("WORLD_SIZE", "the launcher"),
)


def launcher_world_size(environ=os.environ):
    """(size, launcher) that the environment promises, or (None, None) when no launcher started us."""
    for variable, launcher in LAUNCHER_SIZES:
        if environ.get(variable, "").isdigit():
            return int(environ[variable]), launcher
    return None, None


def _loaded_libraries(fragment):
    """Paths of the shared libraries mapped into this process whose file name contains `fragment`."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if fragment in os.path.basename(p))


def _library_name(version_text):
    """'Open MPI v5.0.11, package: ...' -> 'Open MPI v5.0.11'."""
    return version_text.strip().splitlines()[0].split(",")[0] if version_text.strip() else "unknown"


def process_findings():
    """What one process can find out alone: {"build", "mpi", "threads", "gpus"} and its problems."""
    import distml
    from distml import _backend
    from mpi4py import MPI
    from threadpoolctl import threadpool_info

    problems = []
    info = _backend.C.build_info()
    built_mpi, loaded_mpi = _library_name(info["mpi_library"]), _library_name(MPI.Get_library_version())
    libmpi = _loaded_libraries("libmpi.so")
    if built_mpi != loaded_mpi:
        problems.append(f"distml's _C was built against {built_mpi} but mpi4py loads {loaded_mpi}: rebuild distml "
                        "with MPICXX pointing at the mpicxx of the MPI that mpi4py uses (pip install -e . again)")
    if len(libmpi) > 1:
        problems.append(f"two MPI libraries are loaded ({', '.join(libmpi)}): keep one MPI on LD_LIBRARY_PATH")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pools = [{"api": p["user_api"], "library": p["internal_api"], "threads": p["num_threads"],
              "path": p["filepath"]} for p in threadpool_info()]
    openmp = sorted({p["path"] for p in pools if p["api"] == "openmp"})
    if len({os.path.basename(path).split(".")[0] for path in openmp}) > 1:
        problems.append(f"two OpenMP runtimes are loaded ({', '.join(openmp)}): they fight over cores; "
                        "install numpy and distml built with the same compiler family")

    gpus = {"cuda_compiled": bool(info.get("cuda")), "devices": _backend.cuda_device_count(),
            "unavailable": _backend.cuda_unavailable_reason()}
    if gpus["devices"] == 0 and _nvidia_gpus_present():
        problems.append(f"this machine has NVIDIA GPUs but distml cannot use them ({gpus['unavailable']}): "
                        "pip install 'distml[cuda]'")
    return {
        "build": {"distml": distml.__version__, "compiler": info["compiler"], "openmp": info.get("openmp"),
                  "python": sys.version.split()[0], "executable": sys.executable},
        "mpi": {"built_against": built_mpi, "mpi4py_loads": loaded_mpi, "libmpi": libmpi},
        "threads": {"cores": cores, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "distml_threads": _backend.C.get_num_threads(), "pools": pools},
        "gpus": gpus,
    }, problems


def _nvidia_gpus_present():
    return os.path.exists("/dev/nvidia0")


def job_findings(threads_per_rank):
    """Every rank's view of the job, gathered on rank 0: {"job": ...} and its problems, or (None, [])
    where this process is not rank 0. Needs the default process group of more than one rank."""
    import numpy as np

    import distml.distributed as dist
    from distml.distributed.process_group import _world
    from distml.tensor import Tensor

    pg = _world()._pg
    value = np.array([dist.get_rank() + 1.0])
    start = time.perf_counter()
    dist.all_reduce(Tensor(value))
    allreduce_us = (time.perf_counter() - start) * 1e6
    me = {"rank": dist.get_rank(), "host": host_name(), "local_rank": pg.local_rank,
          "local_size": pg.local_size, "shared_memory": pg.shared_memory, "threads": threads_per_rank,
          "cpus": sorted(os.sched_getaffinity(0)), "allreduce": float(value[0]), "allreduce_us": allreduce_us}
    ranks = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, me)
    if me["rank"] != 0:
        return None, []
    return _judge_job(ranks)


def host_name():
    """The node this rank runs on: SLURM's name for it under SLURM, else the hostname."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def _judge_job(ranks):
    """The problems a job's rank reports show: wrong sums, hosts that disagree with MPI's view, no arena."""
    n, problems, notes = len(ranks), [], []
    hosts = {}
    for r in ranks:
        hosts.setdefault(r["host"], []).append(r["rank"])
    expected = n * (n + 1) / 2
    wrong = [r["rank"] for r in ranks if r["allreduce"] != expected]
    if wrong:
        problems.append(f"allreduce of rank+1 gave the wrong sum on ranks {wrong} (expected {expected:g}): "
                        "check that every rank runs the same distml and MPI")
    for host, members in hosts.items():
        local_sizes = {r["local_size"] for r in ranks if r["host"] == host}
        if local_sizes != {len(members)}:
            problems.append(f"host {host} runs ranks {members} but MPI groups them as {sorted(local_sizes)} per "
                            "shared-memory node: check that the hostnames are unique per machine")
        threads = sum(r["threads"] for r in ranks if r["host"] == host)
        cores = len(set().union(*(r["cpus"] for r in ranks if r["host"] == host)))
        if threads > cores and threads > len(members):
            problems.append(f"{len(members)} ranks on {host} run {threads} threads on {cores} cores: set "
                            f"OMP_NUM_THREADS={max(1, cores // len(members))} (distmlrun does this itself)")
        elif len(members) > cores:
            notes.append(f"{len(members)} ranks share {cores} cores on {host}: each step waits for the CPU")
    arena = all(r["shared_memory"] for r in ranks)
    if len(hosts) == 1 and not arena:
        problems.append("all ranks share one host but the shared-memory arena is off: unset DISTML_SHM=0")
    return {"job": {
        "world_size": n, "hosts": {h: members for h, members in sorted(hosts.items())},
        "shared_memory_arena": arena, "allreduce_ok": not wrong,
        "allreduce_us": max(r["allreduce_us"] for r in ranks), "notes": notes}}, problems


def singleton_problem(expected, launcher, environ=os.environ):
    """The fix for a launcher that promised `expected` ranks while MPI started a world of one."""
    if launcher == "srun" or "SLURM_STEP_ID" in environ and "OMPI_COMM_WORLD_SIZE" not in environ:
        return f"srun started {expected} singletons: use `srun --mpi=pmix` (`srun --mpi=list` shows what it offers)"
    return (f"{launcher} promised {expected} ranks but MPI started a world of one: start the job with "
            "distmlrun or mpirun (torchrun does not start MPI ranks)")


def run(as_json=False, out=sys.stdout):
    """Print the findings (rank 0 only, in a job) and return the exit status (see the module's docstring)."""
    import distml.distributed as dist

    findings, problems = process_findings()
    expected, launcher = launcher_world_size()
    dist.process_group._join_world(check_launcher=False)  # report a launcher's wrong world, do not raise
    size = dist.get_world_size()
    findings["launcher"] = {"name": launcher, "promised": expected, "mpi_world_size": size}
    if expected not in (None, 1) and size == 1:
        problems.append(singleton_problem(expected, launcher))
        if int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0")) or 0) != 0:
            return 1  # every singleton finds the same; the first one says it
    elif expected is not None and expected != size:
        problems.append(f"{launcher} promised {expected} ranks but MPI's world has {size}: launch with one "
                        "launcher (distmlrun, mpirun or srun --mpi=pmix), not one inside another")
    if size > 1:
        job, job_problems = job_findings(findings["threads"]["distml_threads"])
        if job is None:
            return 0
        findings.update(job)
        problems += job_problems
    findings["problems"] = problems
    print(json.dumps(findings, indent=2) if as_json else report(findings), file=out)
    return 0 if size > 1 or not problems else 1


def report(findings):
    """The findings as plain lines: one per topic, then one per problem with its fix."""
    build, mpi, threads, gpus = findings["build"], findings["mpi"], findings["threads"], findings["gpus"]
    pools = ", ".join(f"{p['library']} {p['threads']}" for p in threads["pools"]) or "none found"
    same = "the same library" if mpi["built_against"] == mpi["mpi4py_loads"] else "A DIFFERENT library"
    lines = [
        "distml doctor",
        f"  build      distml {build['distml']}, Python {build['python']}, _C by {build['compiler']}, "
        f"OpenMP {build['openmp']}, CUDA {'compiled in' if gpus['cuda_compiled'] else 'not compiled in'}",
        f"  mpi        _C built against {mpi['built_against']}; mpi4py loads {mpi['mpi4py_loads']} ({same})",
        f"  threads    {threads['cores']} cores; distml kernels {threads['distml_threads']} threads; "
        f"pools: {pools}; OMP_NUM_THREADS={threads['omp_num_threads'] or 'unset'}",
        f"  gpus       {gpus['devices']} usable" + (f" ({gpus['unavailable']})" if gpus["unavailable"] else ""),
    ]
    launcher = findings["launcher"]
    if launcher["name"]:
        lines.append(f"  launcher   {launcher['name']} promised {launcher['promised']} ranks; "
                     f"MPI world has {launcher['mpi_world_size']}")
    if "job" in findings:
        job = findings["job"]
        hosts = "; ".join(f"{host}: ranks {_ranges(members)}" for host, members in job["hosts"].items())
        lines += [f"  job        {job['world_size']} ranks on {len(job['hosts'])} host(s) ({hosts})",
                  f"  arena      shared-memory arena {'in use' if job['shared_memory_arena'] else 'not used'}"
                  + ("" if job["shared_memory_arena"] or len(job["hosts"]) == 1 else
                     " (ranks span hosts: collectives go over MPI messages)"),
                  f"  allreduce  {'correct' if job['allreduce_ok'] else 'WRONG'} on every rank, "
                  f"{job['allreduce_us']:.0f} us for 8 bytes (first call)"]
        lines += [f"  note       {note}" for note in job["notes"]]
    lines += [f"problem: {p}" for p in findings["problems"]] or ["no problems found"]
    return "\n".join(lines)


def _ranges(members):
    """[0, 1, 2, 5] -> '0-2,5'."""
    spans, start = [], members[0]
    for previous, current in zip(members, members[1:] + [None]):
        if current != previous + 1:
            spans.append(f"{start}-{previous}" if previous != start else f"{start}")
            start = current
    return ",".join(spans)
