"""Test hosts on one machine (network + UTS namespaces, made by netns_hosts.sh) and mpiexec across them.

    with Hosts(3) as hosts:                       # hosts h1, h2, h3 at 10.77.0.1..3
        rc, out, seconds = hosts.mpiexec("h1:2,h2:2", sys.executable, "prog.py", timeout=60)

mpiexec runs on h1, as on a cluster's first node, and starts its daemons on the other hosts through
an rsh agent that enters their namespaces instead of ssh; the daemons and the ranks talk only over
the hosts' addresses (10.77.0.0/24, TCP), shared memory only within a host.
"""
import os
import shlex
import shutil
import signal
import itertools
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "netns_hosts.sh")
SUBNET = "10.77.0.0/24"
_runs = itertools.count(1)


def missing_rights():
    """Why this machine cannot make the hosts (a sentence), or None when it can."""
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    missing = [exe for exe in ("ip", "nsenter", "unshare") if shutil.which(exe) is None]
    if missing:
        return f"{', '.join(missing)} not found (iproute2 / util-linux)"
    return None


class Hosts:
    """n hosts h1..hn; this process owns them (their names carry its pid) and close() removes them.
    mpiexec: the one that mpiexec() runs (default: distmlrun's choice)."""

    def __init__(self, n, mpiexec=None):
        from distml.distributed.run import find_mpiexec

        self.n, self.mpiexec_path = n, mpiexec or find_mpiexec()
        self.run_id = f"distml-{os.getpid()}-{next(_runs)}"
        self.names = [f"h{i}" for i in range(1, n + 1)]
        self._control("clean")  # hosts left by runs that crashed
        self._control("down", self.run_id)
        try:
            self._control("up", self.run_id, str(n))
        except Exception:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._control("down", self.run_id)

    def _control(self, *args):
        done = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"netns_hosts.sh {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")

    def agent(self):
        """Open MPI's rsh agent for these hosts: `<agent> HOST COMMAND` runs COMMAND on HOST."""
        return f"{SCRIPT} exec {self.run_id}"

    def environment(self, extra=None):
        """os.environ plus what an mpiexec (or distmlrun) needs to start ranks on these hosts, and
        `extra` (a value of None removes the variable)."""
        path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path,
                   PRTE_MCA_plm_ssh_agent=self.agent(),
                   PRTE_MCA_oob_tcp_if_include=SUBNET,   # the daemons' connections
                   # A daemon cut off is noticed after 2 + 3 x 1 s of silence (default 300 + 9 x 20 s).
                   PRTE_MCA_oob_tcp_keepalive_time="2", PRTE_MCA_oob_tcp_keepalive_intvl="1",
                   PRTE_MCA_oob_tcp_keepalive_probes="3",
                   OMPI_MCA_btl="self,sm,tcp",            # ranks: shared memory within a host only
                   OMPI_MCA_btl_tcp_if_include=SUBNET,
                   OMPI_MCA_mpi_yield_when_idle="1")
        env.update(extra or {})
        return {name: value for name, value in env.items() if value is not None}

    def on(self, host, argv):
        """argv run on host (the command list for subprocess)."""
        return ["bash", SCRIPT, "exec", self.run_id, host, shlex.join(argv)]

    def start(self, host, argv, env=None):
        """Start argv on host in a session of its own; the Popen (stdout and stderr in one pipe)."""
        return subprocess.Popen(self.on(host, argv), cwd=ROOT, env=self.environment(env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def finish(self, proc, timeout):
        """Wait for proc with a hard timeout; (returncode, output). On timeout its session and
        everything left on the hosts are killed, and the output says so."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            for host in self.names:
                self.kill(host)
            out, _ = proc.communicate()
            out += f"\n[hosts.py: killed after {timeout} s]"
        return proc.returncode, out

    def run(self, host, argv, timeout, env=None):
        """Run argv on host with a hard timeout; (returncode, output, seconds)."""
        start = time.monotonic()
        rc, out = self.finish(self.start(host, argv, env), timeout)
        return rc, out, time.monotonic() - start

    def mpiexec(self, hosts, *argv, timeout, env=None, mpiexec_args=()):
        """mpiexec --host <hosts> argv, started on the first host named."""
        first = hosts.split(",")[0].split(":")[0]
        command = [self.mpiexec_path, "--allow-run-as-root", "--host", hosts, *mpiexec_args, *argv]
        return self.run(first, command, timeout, env)

    def kill(self, host):
        """Kill every process on host (its daemon and ranks), as when the machine dies."""
        self._control("kill", self.run_id, host)

    def cut(self, host, up=False):
        """Take host's link to the others down (up=True: bring it back), as when its network fails."""
        subprocess.run(["ip", "-n", f"{self.run_id}-sw", "link", "set", host, "up" if up else "down"],
                       check=True, timeout=30)

    def processes(self):
        """Pids still running on any of the hosts (zombies, which init reaps, are not counted)."""
        pids = []
        for host in self.names:
            listed = subprocess.run(["ip", "netns", "pids", f"{self.run_id}-{host}"], capture_output=True,
                                    text=True, timeout=30)
            pids += [pid for pid in listed.stdout.split() if _state(pid) not in ("Z", None)]
        return pids


def _state(pid):
    """The process's state letter (R, S, Z, ...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
