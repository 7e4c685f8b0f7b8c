"""Whole programs, written for PyTorch, run unchanged on distml.

Every script in tests/programs/ is a short standalone program in the style of a common public
PyTorch program (tutorials, pytorch/examples), written with plain `import torch`. Each test runs
one program twice, concurrently, each in its own process and temporary directory:

- with real PyTorch (the reference), and
- with distml: the imports are rewritten textually (`import torch` -> `import distml as torch`,
  `from torch.X import Y` -> `from distml.X import Y`, `import torch.X as Z` ->
  `import distml.X as Z`, `torchvision` -> `distml.vision`) and the rewritten program runs with a
  `sys.meta_path` finder installed (as `sitecustomize`, through PYTHONPATH) that refuses every
  import of torch -- so a passing program proves distml never falls back on the installed
  PyTorch, in the processes the program starts (multiprocessing workers) too --

then compares the two stdouts line by line: numbers within a tolerance (relative 1e-3, absolute
1e-4, or one unit in the last printed digit, whichever is largest; a program may declare
`# tolerance: 1e-2` or `# tolerance: rel=1e-2 abs=1e-3` in its leading comments), all other text
exactly, except that runs of whitespace count as one space (tensor reprs pad numbers to a common
width) and that distml's reprs may name their module `distml.` where PyTorch's say `torch.`
(`distml.Size([2])`, `distml.float32`). stderr is not compared (warnings differ).

EXPECTED_TO_FAIL lists the programs that distml cannot run yet, each with the first thing that
goes wrong. They are strict expected failures: once a feature lands and a program passes, its
test reports XPASS(strict) as a failure -- delete the entry then. A failure of the *torch* run is
never excused by this table (the programs must always run on real PyTorch).

Speed: importing torch costs seconds of CPU (and its first optimizer pulls in torch._dynamo),
importing distml about two, on a machine the tests share. So each flavour has a fork server: one
process that has installed the flavour's environment (the torch blocker for distml) and imported
the framework once, and forks a child per run; the child runs the program as `__main__`, in its
own process group, cwd, argv, stdout and stderr, like `python program.py`. Set
DISTML_PROGRAMS_FORKSERVER=0 to run every program as a plain `python program.py` instead.
DISTML_PROGRAMS_JOBS sets how many runs of each flavour go at once (default: the CPU count, at
least 2).
"""
import concurrent.futures
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# The reference runs need PyTorch; checking for it without importing it here saves the seconds an
# import of torch takes (the programs import it in their own processes).
if importlib.util.find_spec("torch") is None:
    pytest.skip("PyTorch is not installed (the reference runs need it)", allow_module_level=True)

# program -> the first thing distml gets wrong today (exception type and message, or the first
# output line that differs). Delete an entry when its program passes.
EXPECTED_TO_FAIL = {
    "autograd_custom_function.py": "higher-order gradients: NotImplementedError: create_graph=True "
                                   "(higher-order gradients) is not supported by distml",
}

PROGRAMS_DIR = Path(__file__).parent / "programs"
PROGRAMS = sorted(p.name for p in PROGRAMS_DIR.glob("*.py"))
TIMEOUT_S = 60
# Started first, so that the longest runs (new interpreters, long loops) overlap the rest.
SLOW_FIRST = ("mp_spawn.py", "char_rnn.py", "hogwild.py", "time_sequence_lstmcell.py", "word_language_model.py")
DEFAULT_REL, DEFAULT_ABS = 1e-3, 1e-4
JOBS = int(os.environ.get("DISTML_PROGRAMS_JOBS") or max(2, os.cpu_count() or 1))
USE_FORKSERVER = os.environ.get("DISTML_PROGRAMS_FORKSERVER", "1") != "0" and hasattr(os, "fork")

# The environment both runs get: one thread per process (the runs share the machine), no GPU
# (so torch and distml see the same devices), a fixed hash seed.
RUN_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}


class DistmlMismatch(AssertionError):
    """distml's run failed or printed something else than PyTorch's (an expected failure when listed)."""


class ReferenceRunFailed(RuntimeError):
    """The PyTorch run itself failed: a broken program, never an expected failure."""


# --------------------------------------------------------------------------------------------
# Rewriting the imports
# --------------------------------------------------------------------------------------------

_ROOTS = {"torch": "distml", "torchvision": "distml.vision"}
_IMPORT = re.compile(r"^(?P<indent>[ \t]*)import[ \t]+(?P<names>[^#\n;]+?)(?P<tail>[ \t]*(?:#.*)?)$")
_FROM = re.compile(r"^(?P<indent>[ \t]*)from[ \t]+(?P<module>torch|torchvision)(?P<rest>(?:\.[\w.]+)?[ \t]+import\b)")


def _rewrite_module(module):
    root, dot, rest = module.partition(".")
    return _ROOTS[root] + dot + rest if root in _ROOTS else None


def _rewrite_import_item(item):
    parts = item.split()
    module, alias = parts[0], (parts[2] if len(parts) == 3 and parts[1] == "as" else None)
    new = _rewrite_module(module)
    if new is None:
        return item
    if alias is not None:
        return f"{new} as {alias}"
    root = module.split(".")[0]
    if module == root:                           # import torch
        return f"{new} as {root}"
    # import torch.nn.functional: binds `torch`, with the submodule loaded as an attribute
    return f"{new}, {_ROOTS[root]} as {root}"


def rewrite_imports(source):
    """The program with its torch / torchvision imports pointed at distml; nothing else changes."""
    out = []
    for line in source.splitlines(keepends=True):
        body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        m = _FROM.match(body)
        if m:
            body = m["indent"] + "from " + _rewrite_module(m["module"]) + body[m.end("module"):]
        else:
            m = _IMPORT.match(body)
            if m and re.search(r"\btorch", m["names"]):
                items = [_rewrite_import_item(item.strip()) for item in m["names"].split(",")]
                body = m["indent"] + "import " + ", ".join(items) + m["tail"]
        out.append(body + newline)
    return "".join(out)


# A sitecustomize module, found through PYTHONPATH by every Python process the distml run starts
# (spawned multiprocessing workers too), that makes importing torch an error.
BLOCKER = '''\
import sys


class _RefuseTorch:
    """distml must run PyTorch programs without PyTorch: importing torch is an error."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision", "torchaudio"):
            raise ImportError(f"distml must not import torch (import of {name!r} refused)", name=name)
        return None


sys.meta_path.insert(0, _RefuseTorch())
'''


# --------------------------------------------------------------------------------------------
# Comparing outputs
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|inf|nan)(?!\w)")


def _split_numbers(line):
    """(text pieces, number strings): the pieces interleave the numbers, whitespace runs collapsed."""
    numbers = _NUMBER.findall(line)
    texts = [" ".join(t.split()) for t in _NUMBER.split(line)]
    return texts, numbers


def _last_digit(token):
    """One unit in the last printed digit of a decimal number (0 for integers)."""
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa:
        return 0.0
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** ((int(exponent) if exponent else 0) - decimals)


def numbers_close(expected, actual, rel=DEFAULT_REL, abs_=DEFAULT_ABS):
    a, b = float(expected), float(actual)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    allowed = max(abs_, rel * max(abs(a), abs(b)), 1.0001 * max(_last_digit(expected), _last_digit(actual)))
    return abs(a - b) <= allowed


_DISTML_NAME = re.compile(r"(?<![\w.])distml\.(?=[A-Za-z_])")


def canonical_names(output):
    """distml's output with its reprs' module name read as torch's: `distml.Size([2])`, `distml.float32`
    and `distml.sparse_coo` print what `torch.Size([2])`, `torch.float32`, `torch.sparse_coo` print
    with PyTorch. (Programs that depend on such a string, e.g. `x.type() == "torch.FloatTensor"`,
    test it themselves and print the outcome.)"""
    return _DISTML_NAME.sub("torch.", output)


def compare_outputs(expected, actual, rel=DEFAULT_REL, abs_=DEFAULT_ABS):
    """The differences between two program outputs, as messages (empty when they agree)."""
    exp_lines = expected.rstrip("\n").splitlines() if expected.strip() else []
    act_lines = actual.rstrip("\n").splitlines() if actual.strip() else []
    problems = []
    for i, (e, a) in enumerate(zip(exp_lines, act_lines), 1):
        e_texts, e_nums = _split_numbers(e)
        a_texts, a_nums = _split_numbers(a)
        if e_texts != a_texts or len(e_nums) != len(a_nums):
            problems.append(f"line {i}: expected {e.strip()!r}, got {a.strip()!r}")
        else:
            bad = [(x, y) for x, y in zip(e_nums, a_nums) if not numbers_close(x, y, rel, abs_)]
            if bad:
                problems.append(f"line {i}: numbers differ {bad[:3]}: expected {e.strip()!r}, got {a.strip()!r}")
    if len(exp_lines) != len(act_lines):
        problems.append(f"expected {len(exp_lines)} lines, got {len(act_lines)}"
                        + (f"; first extra line {act_lines[len(exp_lines)]!r}" if len(act_lines) > len(exp_lines)
                           else f"; first missing line {exp_lines[len(act_lines)]!r}"))
    return problems


def program_tolerance(source):
    """(rel, abs) from a `# tolerance: ...` line in the program's leading comments."""
    rel, abs_ = DEFAULT_REL, DEFAULT_ABS
    for line in source.splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s*tolerance:\s*(.+)", line)
        if m:
            for part in m.group(1).split():
                key, _, value = part.rpartition("=")
                if key in ("", "rel"):
                    rel = float(value)
                if key in ("", "abs"):
                    abs_ = float(value)
    return rel, abs_


def first_error(stderr, returncode):
    """The exception line of the last traceback in stderr (else its last line), with the exit status."""
    lines = [l.rstrip() for l in stderr.splitlines() if l.strip()]
    starts = [i for i, l in enumerate(lines) if l.startswith("Traceback (most recent call last)")]
    if starts:
        tail = [l for l in lines[starts[-1] + 1:] if not l.startswith((" ", "\t"))]
        if tail:
            return tail[-1]
    if returncode in (-signal.SIGKILL, 124):
        return f"timed out after {TIMEOUT_S} s"
    return (lines[-1] if lines else "no output on stderr") + f" (exit status {returncode})"


# --------------------------------------------------------------------------------------------
# Running programs
# --------------------------------------------------------------------------------------------

class Run:
    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    @property
    def error(self):
        return first_error(self.stderr, self.returncode)


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path):
    return Path(path).read_text(errors="replace") if Path(path).exists() else ""


def run_script(script, cwd, env, timeout=TIMEOUT_S):
    """`python script` in cwd, its own session; stdout/stderr through files (workers may outlive it)."""
    start = time.monotonic()
    out_path, err_path = Path(cwd) / "stdout.txt", Path(cwd) / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            returncode = proc.wait()
            with open(err_path, "ab") as e:
                e.write(f"\ntimed out after {timeout} s\n".encode())
        finally:
            _kill_group(proc.pid)                 # stray workers of the program
    return Run(returncode, _read(out_path), _read(err_path), time.monotonic() - start)


# What each fork server imports once, so that a forked run skips the cost: the modules the
# programs use (torch._dynamo is what torch's first optimizer or lr_scheduler would import).
TORCH_PRELOAD = ["torch", "torch._dynamo", "torch.nn", "torch.nn.functional", "torch.optim",
                 "torch.optim.lr_scheduler", "torch.utils.data", "torch.utils.data.distributed",
                 "torch.distributions", "torch.fft", "torch.special", "torch.linalg", "torch.multiprocessing",
                 "torch.distributed", "torch.nn.parallel", "torch.nn.utils.rnn", "torch.autograd.functional"]
DISTML_PRELOAD = ["distml", "distml.nn", "distml.nn.functional", "distml.optim", "distml.utils.data"]

# The fork server: imports the preload list (a failure there is left for the runs to report),
# then for each request line forks a child that runs one program as `__main__` -- its own
# process group, cwd, argv, sys.path[0], stdout and stderr files -- and replies with the pid
# and, once reaped, the exit status. Started with the environment of the runs it serves.
FORK_SERVER = r"""
import atexit, importlib, io, json, os, runpy, sys, threading, traceback
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        pass
reply_lock = threading.Lock()
replies = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def reply(**msg):
    with reply_lock:
        replies.write(json.dumps(msg) + "\n")
        replies.flush()


def child(req):
    code = 1
    try:
        os.close(replies.fileno())
        os.setpgid(0, 0)
        os.chdir(req["cwd"])
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False))
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        sys.argv = [req["program"]]
        sys.path[0] = os.path.dirname(req["program"])
        try:
            runpy.run_path(req["program"], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException as e:
            tb = e.__traceback__                 # print it as python would: from the program's frame
            while tb is not None and tb.tb_frame.f_code.co_filename != req["program"]:
                tb = tb.tb_next
            traceback.print_exception(type(e), e, tb or e.__traceback__)
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(code)


def wait(job, pid):
    _, status = os.waitpid(pid, 0)
    reply(id=job, rc=os.waitstatus_to_exitcode(status))


reply(ready=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(req)
    reply(id=req["id"], pid=pid)
    threading.Thread(target=wait, args=(req["id"], pid), daemon=True).start()
"""


class ForkServer:
    """One process that has imported the framework, forking a fresh child for each run."""

    def __init__(self, name, env, preload, workdir):
        self.name = name
        self._stderr_path = Path(workdir) / f"{name}-server.stderr"
        with open(self._stderr_path, "wb") as err:
            self._proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER, json.dumps(preload)], env=env,
                                          cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                          text=True, bufsize=1)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._pending = {}                       # job id -> {"started", "done" events, "pid", "rc"}
        self._next = 0
        self._failed = None
        threading.Thread(target=self._read_replies, daemon=True).start()

    def _read_replies(self):
        for line in self._proc.stdout:
            msg = json.loads(line)
            if msg.get("ready"):
                self._ready.set()
                continue
            with self._lock:
                slot = self._pending[msg["id"]]
            slot.update(msg)
            slot["done" if "rc" in msg else "started"].set()
        status = self._proc.wait()
        self._failed = (f"the {self.name} fork server exited (status {status}): "
                        + first_error(_read(self._stderr_path), status))
        self._ready.set()
        with self._lock:
            for slot in self._pending.values():
                slot["started"].set()
                slot["done"].set()

    def run(self, program, cwd, timeout=TIMEOUT_S):
        if not self._ready.wait(timeout=300) or self._failed:
            return Run(1, "", self._failed or f"the {self.name} fork server did not start", 0.0)
        start = time.monotonic()
        out_path, err_path = Path(cwd) / "stdout.txt", Path(cwd) / "stderr.txt"
        slot = {"started": threading.Event(), "done": threading.Event()}
        with self._lock:
            job, self._next = self._next, self._next + 1
            self._pending[job] = slot
            try:
                self._proc.stdin.write(json.dumps({"id": job, "program": str(program), "cwd": str(cwd),
                                                   "stdout": str(out_path), "stderr": str(err_path)}) + "\n")
                self._proc.stdin.flush()
            except OSError:
                return Run(1, "", self._failed or f"the {self.name} fork server is gone", 0.0)
        finished = slot["done"].wait(timeout=timeout)
        slot["started"].wait(timeout=10)
        if "pid" in slot:
            _kill_group(slot["pid"])                 # the program on a timeout, else its stray workers
        if not finished:
            slot["done"].wait(timeout=10)
            with open(err_path, "a") as e:
                e.write(f"\ntimed out after {timeout} s\n")
        stderr = _read(err_path)
        if "rc" not in slot and self._failed:
            stderr += "\n" + self._failed
        return Run(slot.get("rc", -signal.SIGKILL), _read(out_path), stderr, time.monotonic() - start)

    def close(self):
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except Exception:
            self._proc.kill()


def _env(extra_path=None):
    env = dict(os.environ, **RUN_ENV)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def make_blocker(directory):
    """A folder holding the torch-refusing sitecustomize, for PYTHONPATH."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(BLOCKER)
    return directory


def write_distml_program(name, source, cwd):
    script = Path(cwd) / name
    script.write_text(rewrite_imports(source))
    return script


def run_with_distml(name, source, cwd, blocker_dir):
    """The program, imports rewritten, as `python name` in cwd with torch imports refused."""
    return run_script(write_distml_program(name, source, cwd), cwd, _env(blocker_dir))


class ProgramRunner:
    """Runs programs with torch and with distml, several at once; results are futures."""

    def __init__(self, root, use_forkserver=USE_FORKSERVER):
        self.root = Path(root)
        self.blocker_dir = make_blocker(self.root / "blocker")
        self._servers = {}
        if use_forkserver:
            self._servers = {"torch": ForkServer("torch", _env(), TORCH_PRELOAD, self.root),
                             "distml": ForkServer("distml", _env(self.blocker_dir), DISTML_PRELOAD, self.root)}
        self._pools = {flavour: concurrent.futures.ThreadPoolExecutor(JOBS) for flavour in ("torch", "distml")}
        self._futures = {}

    def _workdir(self, name, flavour):
        path = self.root / f"{Path(name).stem}-{flavour}"
        path.mkdir()
        return path

    def run_torch(self, program):
        cwd = self._workdir(program.name, "torch")
        if "torch" in self._servers:
            return self._servers["torch"].run(program, cwd)
        return run_script(program, cwd, _env())

    def run_distml(self, program):
        cwd = self._workdir(program.name, "distml")
        script = write_distml_program(program.name, program.read_text(), cwd)
        if "distml" in self._servers:
            return self._servers["distml"].run(script, cwd)
        return run_script(script, cwd, _env(self.blocker_dir))

    def submit(self, name):
        if name not in self._futures:
            program = PROGRAMS_DIR / name
            self._futures[name] = (self._pools["torch"].submit(self.run_torch, program),
                                   self._pools["distml"].submit(self.run_distml, program))
        return self._futures[name]

    def close(self):
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        for server in self._servers.values():
            server.close()


@pytest.fixture(scope="session")
def program_runner(request):
    root = tempfile.mkdtemp(prefix="distml-programs-")
    runner = ProgramRunner(root)
    # Start every selected program now (the slowest first), so they run side by side while the
    # tests wait in order.
    selected = [item.callspec.params["program"] for item in request.session.items
                if getattr(item, "function", None) is test_program]
    for name in sorted(selected, key=lambda name: name not in SLOW_FIRST):
        runner.submit(name)
    yield runner
    runner.close()
    shutil.rmtree(root, ignore_errors=True)


def _params():
    for name in PROGRAMS:
        marks = ()
        if name in EXPECTED_TO_FAIL:
            marks = pytest.mark.xfail(strict=True, raises=DistmlMismatch, reason=EXPECTED_TO_FAIL[name])
        yield pytest.param(name, marks=marks, id=name[:-3])


@pytest.mark.parametrize("program", list(_params()))
def test_program(program, program_runner):
    torch_future, distml_future = program_runner.submit(program)
    reference = torch_future.result()
    got = distml_future.result()
    if reference.returncode != 0:
        raise ReferenceRunFailed(f"{program} fails with real PyTorch: {reference.error}\n{reference.stderr[-3000:]}")
    if not reference.stdout.strip():
        raise ReferenceRunFailed(f"{program} printed nothing with real PyTorch")
    if got.returncode != 0:
        raise DistmlMismatch(f"{program} fails on distml: {got.error}\n{got.stderr[-3000:]}")
    rel, abs_ = program_tolerance((PROGRAMS_DIR / program).read_text())
    problems = compare_outputs(reference.stdout, canonical_names(got.stdout), rel, abs_)
    if problems:
        raise DistmlMismatch(f"{program}: distml's output differs from PyTorch's "
                             f"({len(problems)} lines):\n  " + "\n  ".join(problems[:10]))


# --------------------------------------------------------------------------------------------
# The harness itself
# --------------------------------------------------------------------------------------------

def test_corpus_and_table():
    assert len(PROGRAMS) >= 28
    assert set(EXPECTED_TO_FAIL) <= set(PROGRAMS), set(EXPECTED_TO_FAIL) - set(PROGRAMS)
    for name in PROGRAMS:
        source = (PROGRAMS_DIR / name).read_text()
        assert "distml" not in source, f"{name} must be a plain PyTorch program"
        assert re.search(r"^import torch\b|^from torch\b", source, re.M), name


def test_compare_accepts_numbers_within_tolerance():
    assert compare_outputs("loss 0.12345\n", "loss 0.12346\n") == []
    assert compare_outputs("a 1.0000 b 2.5\n", "a 1.00001 b 2.5\n") == []
    assert compare_outputs("tensor([ 1.0000, -2.0000])", "tensor([1.0000, -2.0000])") == []     # repr padding
    assert compare_outputs("tensor([0.1000, 123.4560])", "tensor([1.0000e-01, 1.2346e+02])") == []
    assert compare_outputs("rounded 0.1234", "rounded 0.1235") == []          # one unit in the last digit
    assert compare_outputs("x -0.0000 nan inf", "x 0.0000 nan inf") == []
    assert compare_outputs("value 1.00", "value 1.05", rel=0.1, abs_=0.1) == []
    assert compare_outputs("float32 conv1.weight", "float32 conv1.weight") == []


def test_canonical_names():
    assert canonical_names("distml.Size([2, 3]) distml.float32 x.distml.y mydistml.z") == \
        "torch.Size([2, 3]) torch.float32 x.distml.y mydistml.z"
    assert compare_outputs("torch.Size([4])", canonical_names("distml.Size([4])")) == []


def test_compare_rejects_other_text_and_numbers():
    assert compare_outputs("loss 0.5000", "loss 0.5100")
    assert compare_outputs("count 41", "count 42")
    assert compare_outputs("accuracy: True", "accuracy: False")
    assert compare_outputs("dtype torch.float32", "dtype torch.float64")       # digits inside words are text
    assert compare_outputs("a 1 2", "a 1")
    assert compare_outputs("one\ntwo\n", "one\n")
    assert compare_outputs("x nan", "x 1.0")
    assert compare_outputs("x inf", "x -inf")
    assert compare_outputs("tensor([1., 2.])", "tensor([1., 2.], dtype=torch.float64)")


def test_tolerance_comment():
    assert program_tolerance("# tolerance: 1e-2\nimport torch\n") == (1e-2, 1e-2)
    assert program_tolerance("# A program.\n# tolerance: rel=1e-2 abs=1e-3\nimport torch\n") == (1e-2, 1e-3)
    assert program_tolerance("import torch\n# tolerance: 1e-2\n") == (DEFAULT_REL, DEFAULT_ABS)


def test_rewrite_imports():
    src = ("import torch\n"
           "import torch.nn as nn\n"
           "import torch.nn.functional as F\n"
           "import torch.multiprocessing as mp\n"
           "import torch.distributed\n"
           "from torch import nn, optim  # comment\n"
           "from torch.utils.data import DataLoader\n"
           "import numpy as np, torch\n"
           "    import torch as th\n"
           "import torchvision\n"
           "import torchvision.transforms as T\n"
           "from torchvision.datasets import MNIST\n"
           "import torchaudio_like_name_is_left_alone\n"
           "x = torch.nn.functional.pad(t, (1, 1))  # import torch in a comment stays\n")
    assert rewrite_imports(src) == (
        "import distml as torch\n"
        "import distml.nn as nn\n"
        "import distml.nn.functional as F\n"
        "import distml.multiprocessing as mp\n"
        "import distml.distributed, distml as torch\n"
        "from distml import nn, optim  # comment\n"
        "from distml.utils.data import DataLoader\n"
        "import numpy as np, distml as torch\n"
        "    import distml as th\n"
        "import distml.vision as torchvision\n"
        "import distml.vision.transforms as T\n"
        "from distml.vision.datasets import MNIST\n"
        "import torchaudio_like_name_is_left_alone\n"
        "x = torch.nn.functional.pad(t, (1, 1))  # import torch in a comment stays\n")


def test_import_blocker(tmp_path):
    blocker = make_blocker(tmp_path / "blocker")

    def run(name, source):
        cwd = tmp_path / name[:-3]
        cwd.mkdir()
        return run_with_distml(name, source, cwd, blocker)

    # Other imports still work under the blocker (distml's own health is the program tests' business).
    ok = run("ok.py", "import numpy, json\nprint(numpy.zeros(2).shape)\n")
    assert ok.returncode == 0 and ok.stdout.strip() == "(2,)", ok.stderr
    for i, sneaky in enumerate(['__import__("torch")', 'import importlib; importlib.import_module("torch.nn")',
                                'exec("import torch")']):
        blocked = run(f"sneaky{i}.py", f"{sneaky}\nprint('imported torch')\n")
        assert blocked.returncode != 0 and "imported torch" not in blocked.stdout, sneaky
        assert "distml must not import torch" in blocked.stderr, blocked.stderr
    # An `import torch` that escaped the rewriting fails too.
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "plain.py").write_text("import torch\nprint('imported torch')\n")
    plain = run_script(tmp_path / "plain" / "plain.py", tmp_path / "plain", _env(blocker))
    assert plain.returncode != 0 and "distml must not import torch" in plain.stderr, plain.stderr
    # The blocker reaches the processes a program starts, too.
    child = run("child.py", "import subprocess, sys\n"
                "r = subprocess.run([sys.executable, '-c', 'import torch'], capture_output=True, text=True)\n"
                "print(r.returncode, 'distml must not import torch' in r.stderr)\n")
    assert child.stdout.split() == ["1", "True"], child.stderr


def test_fork_server_runs_programs_like_python(tmp_path):
    """A forked run sees `__main__`, its argv, cwd, stdout/stderr and exit status as `python prog.py`
    would -- and in the distml flavour the torch blocker is already installed."""
    server = ForkServer("distml", _env(make_blocker(tmp_path / "blocker")), [], tmp_path)
    try:
        progs = {"main.py": "import os, sys\nprint(__name__, os.path.basename(sys.argv[0]), os.getcwd() == "
                            "os.path.dirname(os.path.abspath(__file__)))\nprint('to stderr', file=sys.stderr)\n",
                 "exit.py": "import sys\nprint('before')\nsys.exit(3)\n",
                 "raises.py": "raise ValueError('boom')\n",
                 "sneaky.py": "__import__('torch')\n"}
        runs = {}
        for name, source in progs.items():
            cwd = tmp_path / name[:-3]
            cwd.mkdir()
            (cwd / name).write_text(source)
            runs[name] = server.run(cwd / name, cwd)
    finally:
        server.close()
    assert (runs["main.py"].returncode, runs["main.py"].stdout) == (0, "__main__ main.py True\n"), runs["main.py"].stderr
    assert runs["main.py"].stderr == "to stderr\n"
    assert (runs["exit.py"].returncode, runs["exit.py"].stdout) == (3, "before\n")
    assert runs["raises.py"].returncode == 1 and runs["raises.py"].error == "ValueError: boom"
    assert runs["sneaky.py"].returncode == 1 and "distml must not import torch" in runs["sneaky.py"].error
