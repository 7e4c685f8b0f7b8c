"""distml.profiler: events of a training step, nesting, the table, Chrome traces, schedules, and a
2-rank job under distmlrun whose traces merge into one timeline."""
import collections
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import distml
import distml.nn as nn
from distml.autograd import engine, function
from distml.profiler import (ProfilerAction, ProfilerActivity, merge_chrome_traces, profile, record_function, schedule,
                             tensorboard_trace_handler)
from distml.utils.data import DataLoader, TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_model():
    distml.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def loader():
    x = distml.randn(4, 1, 4, 4)
    y = distml.tensor([0, 2, 1, 0])
    return DataLoader(TensorDataset(x, y), batch_size=2)


def train(model, data, optimizer, steps=None, prof=None):
    for i, (x, y) in enumerate(data):
        with record_function("train_step"):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        if prof is not None:
            prof.step()
        if steps is not None and i + 1 == steps:
            break


def graph_nodes(tensor):
    """The backward nodes reachable from tensor.grad_fn."""
    seen, stack = [], [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, distml.Tensor) or node in seen:
            continue
        seen.append(node)
        stack.extend(node.next_edges)
    return seen


def test_training_step_events():
    model, data = small_model(), loader()
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    applied = []
    function.tracer = lambda cls, inputs, params, outputs: applied.append("distml::" + cls.__name__)  # the exporter's slot
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train(model, data, optimizer)
    finally:
        function.tracer = None
    counts = collections.Counter(e.name for e in prof.events())
    assert counts["train_step"] == 2
    assert counts["Optimizer.step#SGD.step"] == 2
    assert counts["enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"] == 3  # 2 batches, then StopIteration
    for name in ("distml::Conv", "distml::Relu", "distml::Linear", "distml::CrossEntropy", "ConvBackward0",
                 "ReluBackward0", "LinearBackward0", "CrossEntropyBackward0"):
        assert counts[name] == 2, name
    # every primitive the exporter's slot saw is one op event, and nothing else is an op event
    forward = collections.Counter(n for n in counts.elements() if n.startswith("distml::"))
    assert forward == collections.Counter(applied)
    assert function.Primitive.__dict__["apply"] is _plain_apply() and engine.node_profiler is None


def _plain_apply():
    from distml import profiler
    return profiler._PLAIN_APPLY


def test_worker_dataloader_waits():
    data = DataLoader(TensorDataset(distml.arange(6.0)), batch_size=2, num_workers=1)
    with profile() as prof:
        batches = [batch for batch, in data]
    assert len(batches) == 3
    names = [e.name for e in prof.events()]
    assert names.count("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__") == 4


def test_one_event_per_backward_node():
    model = small_model()
    loss = nn.functional.cross_entropy(model(distml.randn(2, 1, 4, 4)), distml.tensor([0, 2]))
    expected = collections.Counter(node.name() for node in graph_nodes(loss))
    with profile() as prof:
        loss.backward()
    assert collections.Counter(e.name for e in prof.events()) == expected


def test_nesting_self_and_total():
    model = small_model()
    with profile() as prof:
        with record_function("outer"):
            with record_function("forward"):
                out = model(distml.randn(2, 1, 4, 4))
            out.sum().backward()
        distml.ones(3) + 1  # outside "outer"
    events = prof.events()
    outer = next(e for e in events if e.name == "outer")
    forward = next(e for e in events if e.name == "forward")
    assert outer.cpu_parent is None and forward.cpu_parent is outer
    conv = next(e for e in events if e.name == "distml::Conv")
    assert conv.cpu_parent is forward
    add = [e for e in events if e.name == "distml::Add"][-1]
    assert add.cpu_parent is None
    for e in events:
        assert 0 <= e.self_cpu_time_total <= e.cpu_time_total
        children = sum(c.cpu_time_total for c in e.cpu_children)
        assert e.self_cpu_time_total == pytest.approx(e.cpu_time_total - children)
        for c in e.cpu_children:
            assert c.cpu_parent is e and c.thread == e.thread
            assert e.time_range.start <= c.time_range.start and c.time_range.end <= e.time_range.end
    inside = {e.name for e in events if _has_ancestor(e, outer)}
    assert {"distml::Conv", "distml::Linear", "ConvBackward0", "SumBackward0"} <= inside
    assert outer.cpu_time_total >= sum(c.cpu_time_total for c in outer.cpu_children)


def _has_ancestor(event, ancestor):
    while event.cpu_parent is not None:
        event = event.cpu_parent
        if event is ancestor:
            return True
    return False


def test_table_rows_and_sorting():
    model, data = small_model(), loader()
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    with profile() as prof:
        train(model, data, optimizer)
    averages = prof.key_averages()
    assert sum(a.count for a in averages) == len(prof.events())
    conv = next(a for a in averages if a.key == "distml::Conv")
    assert conv.count == 2 and conv.cpu_time == pytest.approx(conv.cpu_time_total / 2)

    text = averages.table(sort_by="self_cpu_time_total", row_limit=5)
    lines = text.splitlines()
    header = lines[1].split("  ")
    assert [h.strip() for h in header if h.strip()] == ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total",
                                                        "CPU time avg", "# of Calls"]
    rows = lines[3:-2]
    assert len(rows) == 5
    by_self = sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)[:5]
    width = len(lines[0].split("  ")[0])  # the name column, right-aligned as torch prints it
    assert [row[:width].strip() for row in rows] == [_shown(a.key) for a in by_self]
    assert [int(row.split()[-1]) for row in rows] == [a.count for a in by_self]
    assert lines[-1].startswith("Self CPU time total: ")

    text = averages.table(sort_by="cpu_time_total", row_limit=100)
    assert "train_step" in text.splitlines()[3]  # the outermost range comes first by total time
    assert "enumerate(DataLoader)#_SingleProcessDataLoaderIter._..." in text  # long names cut as torch does
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        averages.table(sort_by="bogus")
    top = averages.table(top_level_events_only=True)
    assert "distml::Conv" not in top and "train_step" in top


def _shown(name):
    return name if len(name) < 52 else name[:52] + "..."


def test_record_shapes():
    linear = nn.Linear(3, 2)
    with profile(record_shapes=True) as prof:
        linear(distml.ones(4, 3))
        linear(distml.ones(5, 3))
    event = next(e for e in prof.events() if e.name == "distml::Linear")
    assert event.input_shapes == [[4, 3], [2, 3], [2]]
    grouped = prof.key_averages(group_by_input_shape=True)
    assert sorted((a.key, str(a.input_shapes), a.count) for a in grouped) == [
        ("distml::Linear", "[[4, 3], [2, 3], [2]]", 1), ("distml::Linear", "[[5, 3], [2, 3], [2]]", 1)]
    assert prof.key_averages()[0].count == 2
    text = grouped.table()
    assert "Input Shapes" in text.splitlines()[1] and "[[5, 3], [2, 3], [2]]" in text
    with profile() as prof:
        linear(distml.ones(4, 3))
    assert prof.events()[0].input_shapes == [] and "Input Shapes" not in prof.key_averages().table()


def test_chrome_trace(tmp_path):
    model = small_model()
    with profile(record_shapes=True) as prof:
        with record_function("outer"):
            model(distml.randn(2, 1, 4, 4)).sum().backward()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["name"] for e in complete) == sorted(e.name for e in prof.events())
    for e in complete:
        assert {"name", "ph", "ts", "dur", "pid", "tid", "args", "cat"} <= set(e)
        assert e["pid"] == os.getpid() and e["tid"] == prof.events()[0].thread and e["dur"] >= 0
    outer = next(e for e in complete if e["name"] == "outer")
    conv = next(e for e in complete if e["name"] == "distml::Conv")
    assert outer["cat"] == "user_annotation" and conv["cat"] == "cpu_op"
    assert outer["ts"] <= conv["ts"] and conv["ts"] + conv["dur"] <= outer["ts"] + outer["dur"]
    assert conv["args"]["Input Dims"] == [[2, 1, 4, 4], [2, 1, 3, 3], [2]]
    names = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"]
    assert names == [{"ph": "M", "name": "process_name", "pid": os.getpid(), "tid": 0,
                      "args": {"name": f"process {os.getpid()}"}}]
    assert abs(trace["baseTimeNanoseconds"] / 1e9 - __import__("time").time()) < 60


def test_schedule_and_trace_handler(tmp_path):
    fn = schedule(wait=1, warmup=1, active=2, repeat=1)
    assert [fn(i) for i in range(6)] == [ProfilerAction.NONE, ProfilerAction.WARMUP, ProfilerAction.RECORD,
                                         ProfilerAction.RECORD_AND_SAVE, ProfilerAction.NONE, ProfilerAction.NONE]
    model = small_model()
    data = DataLoader(TensorDataset(distml.randn(12, 1, 4, 4), distml.tensor([0, 1, 2] * 4)), batch_size=2)
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    ready = []
    handler = tensorboard_trace_handler(str(tmp_path / "tb"), worker_name="w")

    def on_ready(prof):
        ready.append(collections.Counter(e.name for e in prof.events()))
        handler(prof)

    with profile(schedule=fn, on_trace_ready=on_ready) as prof:
        train(model, data, optimizer, steps=6, prof=prof)
    assert len(ready) == 1
    assert ready[0]["ProfilerStep#2"] == ready[0]["ProfilerStep#3"] == 1 and ready[0]["train_step"] == 2
    assert not any(name.startswith("ProfilerStep#") and name[-1] not in "23" for name in ready[0])
    files = os.listdir(tmp_path / "tb")
    assert len(files) == 1 and files[0].startswith("w.") and files[0].endswith(".pt.trace.json")
    assert json.loads((tmp_path / "tb" / files[0]).read_text())["traceEvents"]


def test_start_stop_and_record_function_decorator():
    @record_function("helper")
    def helper(x, depth):
        return helper(x * 2, depth - 1) if depth else x

    helper(distml.ones(2), 1)  # no profiler running: nothing recorded, nothing raised
    prof = profile()
    prof.start()
    helper(distml.ones(2), 1)
    prof.stop()
    events = prof.events()
    assert [e.name for e in events] == ["helper", "distml::Scale", "helper"]
    assert events[1].cpu_parent is events[0] and events[2].cpu_parent is events[0]


def test_unsupported_options_and_cuda():
    for option in ("profile_memory", "with_stack", "with_flops", "with_modules"):
        with pytest.raises(NotImplementedError, match=option):
            profile(**{option: True})
    with pytest.raises(NotImplementedError, match="XPU"):
        profile(activities=[ProfilerActivity.XPU])
    if distml.cuda.is_available():
        pytest.skip("a CUDA device is usable here")
    with pytest.warns(UserWarning, match="CUDA is not available, disabling CUDA profiling"):
        with pytest.raises(AssertionError, match="No activities specified for the profiler"):
            profile(activities=[ProfilerActivity.CUDA]).start()
    with pytest.warns(UserWarning, match="CUDA is not available"):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            distml.ones(2) + 1
    assert [e.name for e in prof.events()] == ["distml::Add"]
    with pytest.raises(AssertionError, match="no trace"):
        profile().events()
    with profile():
        with pytest.raises(RuntimeError, match="already enabled"):
            profile().start()


def test_onnx_export_while_profiling(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with profile() as prof:
        distml.onnx.export(model, (distml.ones(2, 3),), str(tmp_path / "m.onnx"))
    assert [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node] == ["Gemm", "Relu"]
    assert {"distml::Linear", "distml::Relu"} <= {e.name for e in prof.events()}


RANK_SCRIPT = """
    import os
    import distml
    import distml.distributed as dist
    import distml.nn as nn
    from distml.nn.parallel import DistributedDataParallel
    from distml.profiler import profile, record_function

    dist.init_process_group("mpi")
    rank = dist.get_rank()
    distml.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(600, 600), nn.ReLU(), nn.Linear(600, 600)))
    optimizer = distml.optim.SGD(model.parameters(), lr=0.1)
    with profile() as prof:
        x = distml.randn(8, 600)
        with record_function("train_step"):
            model(x).sum().backward()
            optimizer.step()
        dist.all_reduce(distml.ones(10))
    prof.export_chrome_trace(f"trace_rank{rank}.json")
    dist.destroy_process_group()
"""


def test_two_ranks_under_distmlrun(tmp_path):
    (tmp_path / "job.py").write_text(textwrap.dedent(RANK_SCRIPT))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", "job.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    paths = [str(tmp_path / f"trace_rank{r}.json") for r in (0, 1)]
    for rank, path in enumerate(paths):
        trace = json.loads(open(path).read())
        complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        assert {e["pid"] for e in complete} == {rank}
        reduces = [e for e in complete if e["name"] == "mpi:all_reduce"]
        # DDP's buckets (the first closes past 1 MiB: one per layer here) and the plain all_reduce of 10 floats
        buckets = sorted(e["args"]["bucket_index"] for e in reduces if "bucket_index" in e["args"])
        assert buckets == [0, 1]
        assert sum(e["args"]["bytes"] for e in reduces if "bucket_index" in e["args"]) == 4 * 2 * 600 * 601
        plain = [e for e in reduces if "bucket_index" not in e["args"]]
        assert [e["args"]["bytes"] for e in plain] == [40]
        step = next(e for e in complete if e["name"] == "train_step")
        inside = [e for e in reduces if "bucket_index" in e["args"]]
        assert all(step["ts"] <= e["ts"] <= step["ts"] + step["dur"] for e in inside)
    merged = merge_chrome_traces(paths, str(tmp_path / "merged.json"))
    trace = json.loads(open(merged).read())
    with pytest.raises(ValueError, match="same pid"):
        merge_chrome_traces([paths[0], paths[0]], str(tmp_path / "twice.json"))
    cli = subprocess.run([sys.executable, "-m", "distml.profiler", "merge", "-o", "cli.json", *paths], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads((tmp_path / "cli.json").read_text()) == trace
    assert {e["pid"] for e in trace["traceEvents"]} == {0, 1}
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert names == {0: "rank 0", 1: "rank 1"}
    # on one clock: each rank's final all_reduce overlaps the other's (neither returns before both called it)
    last = {pid: max((e for e in trace["traceEvents"] if e["pid"] == pid and e["name"] == "mpi:all_reduce"),
                     key=lambda e: e["ts"]) for pid in (0, 1)}
    assert last[0]["ts"] <= last[1]["ts"] + last[1]["dur"] and last[1]["ts"] <= last[0]["ts"] + last[0]["dur"]
