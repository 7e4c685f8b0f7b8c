"""The flight recorder: every rank keeps its last collectives, to tell which rank hung where.

    from distml.distributed import flight_recorder
    flight_recorder.records()[-1]   # {'seq': 813, 'op': 'all_reduce', 'ranks': [0, 1, 2, 3],
                                    #  'state': 'started', 'bytes': 4194304, 'bucket': 3, ...}
    flight_recorder.dump()          # write <run folder>/flight-<rank>.json now
    kill -USR1 <pid>                # the same from outside, even while the rank is blocked in MPI

Each record (kept in C++, csrc/comm/flight_recorder.cpp, at the cost of a lock per state change)
has the group's own sequence number `seq` (the same on every member: send/recv are numbered
apart), the group's world `ranks`, `op`, `count`, `dtype`, `bytes`, the allreduce's `algo`, the
`peer` (root, source or destination, as a group rank), DDP's `bucket` (-1 outside DDP), `state`
(queued, started, done, failed), the `error` of a failed one and the wall-clock times `queued`,
`started`, `ended`. DISTML_FLIGHT_RECORDER_SIZE sets how many are kept (default 2000; 0 turns
recording off).

A rank dumps its records on SIGUSR1 and when a collective fails (timeout, mismatch, a peer that
left) to flight-<rank>.json in the run folder (DISTML_RUN_DIR, see distml.distributed.run_dir),
with every thread's Python stack (written by faulthandler from the signal handler, so it works
while the main thread is blocked in C++ without the GIL). A rank whose collective failed also
signals the other ranks on its host before the job is aborted, so that they dump too.
distmlrun merges the dumps into one report (`report`): which collective each rank last finished
and which it waits in.
"""
import faulthandler
import json
import os
import re
import signal
import socket
import threading
import time

from distml._backend import C
from distml.distributed import run_dir

DEFAULT_SIZE = 2000
_stacks = None  # the file faulthandler writes the stacks to on SIGUSR1


def enable(rank):
    """Start recording (DISTML_FLIGHT_RECORDER_SIZE records) and dump on SIGUSR1 and failures.
    Called by init_process_group."""
    global _stacks
    size = int(os.environ.get("DISTML_FLIGHT_RECORDER_SIZE", DEFAULT_SIZE))
    C.fr_set_capacity(max(0, size))
    if size <= 0:
        return
    folder = run_dir.run_dir()
    stacks_path = os.path.join(folder, f"stacks-{rank}.txt")
    C.fr_configure(folder, rank, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "main_thread": threading.main_thread().ident}),
        stacks_path)
    if not C.fr_install_signal_handler():
        return
    if _stacks is None:
        # Append mode: the dump truncates the file after reading it, and the next stacks start at 0.
        _stacks = open(stacks_path, "a")
        faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True, chain=True)


def records():
    """This rank's records, oldest first (dicts as described above)."""
    data = json.loads(C.fr_json())
    return _with_ranks(data)["records"]


def dump(reason="requested"):
    """Write this rank's dump (without Python stacks) now; returns its path ('' if recording is off)."""
    return C.fr_dump(reason)


def signal_peers():
    """SIGUSR1 to the other ranks of this job on this host (from their check-ins), so they dump."""
    folder = run_dir.run_dir(create=False)
    host, me = socket.gethostname(), os.getpid()
    for entry in run_dir.checked_in(folder):
        if entry.get("host") == host and entry.get("pid") not in (None, me):
            try:
                os.kill(entry["pid"], signal.SIGUSR1)
            except OSError:
                pass  # already gone


def _with_ranks(data):
    groups = data.get("groups", {})
    for record in data.get("records", []):
        record["ranks"] = groups.get(str(record["group"]), [])
    return data


def load(folder, since=0.0):
    """{rank: dump} of the dumps in folder written after `since` (seconds since the epoch)."""
    dumps = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if re.fullmatch(r"flight-\d+\.json", name):
            data = run_dir.read_json(os.path.join(folder, name))
            if data is not None and data.get("dumped", 0) >= since:
                dumps[data["rank"]] = _with_ranks(data)
    return dumps


def _size(nbytes):
    """4194304 -> '4.0 MiB'."""
    if nbytes < 1024:
        return f"{nbytes} B"
    for unit in ("KiB", "MiB", "GiB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.1f} {unit}"


def describe(record):
    """'all_reduce #813 (bucket 3, 4.0 MiB float32, ring, ranks 0-3)'."""
    details = []
    if record.get("bucket", -1) >= 0:
        details.append(f"bucket {record['bucket']}")
    details.append(f"{_size(record['bytes'])} {record['dtype']}" if record["bytes"] else "no data")
    if record.get("algo") not in ("", "none", None):
        details.append(record["algo"])
    ranks = record.get("ranks", [])
    if ranks:
        details.append(f"ranks {', '.join(map(str, ranks))}")
    return f"{record['op']} #{record['seq']} ({', '.join(details)})"


def _waits_in(records):
    """The oldest record not done (the collective the rank waits in), or None."""
    return next((r for r in records if r["state"] != "done"), None)


def main_stack(dump):
    """The main thread's Python stack from the dump's faulthandler output ('' if none)."""
    text, main = dump.get("stacks", ""), dump.get("process", {}).get("main_thread")
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", text.strip())
    for block in blocks:
        found = re.match(r"(?:Current thread|Thread) (0x[0-9a-f]+)", block)
        if found and main is not None and int(found[1], 16) == main:
            return "\n".join(block.splitlines()[1:])
    return ""


def report(dumps, world_size=None):
    """The merged report: lines saying which collective each rank waits in or last finished.

        ranks 0, 2, 3 wait in all_reduce #813 (bucket 3, 4.0 MiB float32, ...)
        rank 1 last finished all_reduce #812 (...) and is in Python:
          File "train.py", line 40 in step
    """
    lines, waiting = [], {}
    for rank in sorted(dumps):
        current = _waits_in(dumps[rank]["records"])
        if current is not None:
            key = (tuple(current.get("ranks", [])), current["seq"], current["op"])
            waiting.setdefault(key, (current, []))[1].append(rank)
    for record, ranks in sorted(waiting.values(), key=lambda entry: entry[1]):
        who = f"rank {ranks[0]} waits" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))} wait"
        line = f"{who} in {describe(record)}"
        if record["state"] == "failed" and record.get("error"):
            line += f"; it failed: {record['error']}"
        lines.append(line)
    for rank in sorted(dumps):
        records = dumps[rank]["records"]
        if _waits_in(records) is not None:
            continue
        last = records[-1] if records else None
        stack = main_stack(dumps[rank])
        line = f"rank {rank} " + (f"last finished {describe(last)}" if last else "ran no collective yet")
        line += " and is in Python" + (":" if stack else " (no stack was written)")
        lines.append(line)
        lines += [f"  {frame.strip()}" for frame in stack.splitlines()]
    if world_size is not None:
        missing = [r for r in range(world_size) if r not in dumps]
        if missing:
            lines.append(f"rank(s) {', '.join(map(str, missing))} wrote no dump (killed, stuck outside "
                         "Python and MPI, or never reached init_process_group)")
    return lines


def wait_for_dumps(folder, since, world_size, timeout=3.0):
    """Wait until every rank dumped after `since`, or `timeout` seconds; returns load()'s dict."""
    deadline = time.monotonic() + timeout
    while True:
        dumps = load(folder, since)
        if len(dumps) >= world_size or time.monotonic() > deadline:
            return dumps
        time.sleep(0.1)
