"""What a profile holds once it stops: FunctionEvents with parents, children and self time, their
averages by name, torch's summary table and the Chrome trace."""
import json
import os

_US_IN_MS, _US_IN_SECOND = 1000.0, 1000.0 * 1000.0


class Interval:
    """An event's [start, end] in microseconds since the profiler started."""
    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start, self.end = start, end

    def elapsed_us(self):
        return self.end - self.start


class FunctionEvent:
    """One recorded range. `cpu_time_total` (us) includes the ranges nested in it on the same
    thread (`cpu_children`); `self_cpu_time_total` does not. `args` holds the trace's extra fields
    (a collective's bytes, a DDP bucket index)."""

    def __init__(self, id, name, thread, start_us, end_us, cat, args=None, input_shapes=None):
        self.id, self.name, self.key, self.thread = id, name, name, thread
        self.time_range = Interval(start_us, end_us)
        self.cat, self.args = cat, args or {}
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.cpu_parent, self.cpu_children = None, []
        self.count = 1
        self.is_async = False

    @property
    def cpu_time_total(self):
        return self.time_range.elapsed_us()

    @property
    def self_cpu_time_total(self):
        return self.cpu_time_total - sum(child.cpu_time_total for child in self.cpu_children)

    @property
    def cpu_time(self):
        return self.cpu_time_total

    cpu_time_total_str = property(lambda self: _format_time(self.cpu_time_total))
    self_cpu_time_total_str = property(lambda self: _format_time(self.self_cpu_time_total))
    cpu_time_str = property(lambda self: _format_time(self.cpu_time))

    def __repr__(self):
        return (f"<FunctionEvent id={self.id} name={self.name} thread={self.thread} "
                f"cpu_time_total={self.cpu_time_total:.3f}us self_cpu_time_total={self.self_cpu_time_total:.3f}us "
                f"input_shapes={self.input_shapes} cpu_children={[c.id for c in self.cpu_children]}>")


class FunctionEventAvg:
    """The events of one key (a name, or a name and input shapes) summed: `count`, totals, averages."""

    def __init__(self, key, input_shapes):
        self.key, self.input_shapes = key, input_shapes
        self.count = 0
        self.cpu_time_total = self.self_cpu_time_total = 0.0
        self.cpu_parent = None
        self.is_async = False

    def add(self, event):
        self.count += event.count
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        return self

    @property
    def cpu_time(self):
        return self.cpu_time_total / self.count if self.count else 0.0

    cpu_time_total_str = property(lambda self: _format_time(self.cpu_time_total))
    self_cpu_time_total_str = property(lambda self: _format_time(self.self_cpu_time_total))
    cpu_time_str = property(lambda self: _format_time(self.cpu_time))

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total_str} "
                f"cpu_time={self.cpu_time_str} input_shapes={self.input_shapes}>")


class EventList(list):
    """A list of FunctionEvents (from `prof.events()`) or of their averages (`prof.key_averages()`)."""

    def __init__(self, events=(), trace=None):
        super().__init__(events)
        self._trace = trace  # (base wall-clock ns, pid, process name) for export_chrome_trace

    @property
    def self_cpu_time_total(self):
        return sum(event.self_cpu_time_total for event in self)

    def key_averages(self, group_by_input_shape=False):
        """One FunctionEventAvg per name (and per input shapes with `group_by_input_shape`), in first-seen order."""
        groups = {}
        for event in self:
            key = (event.key, str(event.input_shapes)) if group_by_input_shape else event.key
            if key not in groups:
                groups[key] = FunctionEventAvg(event.key, event.input_shapes if group_by_input_shape else [])
                groups[key].cpu_parent = event.cpu_parent  # as torch: the first event's
            groups[key].add(event)
        return EventList(groups.values(), self._trace)

    def table(self, sort_by=None, row_limit=100, max_name_column_width=55, max_shapes_column_width=80,
              header=None, top_level_events_only=False, time_unit=None):
        """torch's summary table: `prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)`."""
        return _build_table(self, sort_by, header, row_limit, max_name_column_width, max_shapes_column_width,
                            top_level_events_only, time_unit)

    def __str__(self):
        return self.table()

    def export_chrome_trace(self, path):
        """Write the events as Chrome trace JSON (chrome://tracing, Perfetto): complete ("X") events."""
        base_ns, pid, process_name = self._trace
        events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": process_name}},
                  {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
        for event in sorted(self, key=lambda e: e.time_range.start):
            args = {"External id": event.id, **event.args}
            if event.input_shapes:
                args["Input Dims"] = event.input_shapes
            events.append({"ph": "X", "cat": event.cat, "name": event.name, "pid": pid, "tid": event.thread,
                           "ts": event.time_range.start, "dur": event.cpu_time_total, "args": args})
        trace = {"schemaVersion": 1, "displayTimeUnit": "ms", "baseTimeNanoseconds": base_ns, "traceEvents": events}
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with open(path, "w") as f:
            json.dump(trace, f)


def build_events(raw, start_ns):
    """FunctionEvents from the recorder's raw events, times in us since `start_ns` (perf_counter),
    each linked to the innermost range that encloses it on its thread."""
    ordered = sorted(range(len(raw)), key=lambda i: (raw[i].tid, raw[i].start, -raw[i].end, i))
    events, stack, thread = [], [], None
    for number, i in enumerate(ordered, 1):
        r = raw[i]
        event = FunctionEvent(number, r.name, r.tid, (r.start - start_ns) / 1e3, (r.end - start_ns) / 1e3, r.cat,
                              r.args, r.input_shapes)
        if r.tid != thread:
            stack, thread = [], r.tid
        while stack and stack[-1][1] <= r.start:
            stack.pop()
        if stack and r.end <= stack[-1][1]:
            event.cpu_parent = stack[-1][0]
            stack[-1][0].cpu_children.append(event)
        stack.append((event, r.end))
        events.append(event)
    events.sort(key=lambda e: (e.time_range.start, e.id))
    return EventList(events)


def _format_time(time_us):
    if time_us >= _US_IN_SECOND:
        return f"{time_us / _US_IN_SECOND:.3f}s"
    if time_us >= _US_IN_MS:
        return f"{time_us / _US_IN_MS:.3f}ms"
    return f"{time_us:.3f}us"


def _format_time_share(time_us, total_us):
    if total_us == 0:
        return "NaN"
    return f"{time_us * 100.0 / total_us:.2f}%"


def _in_unit(time_us, time_unit):
    if time_unit is None:
        return _format_time(time_us)
    scale = {"s": _US_IN_SECOND, "ms": _US_IN_MS, "us": 1.0}
    if time_unit not in scale:
        raise ValueError(f"time_unit must be one of 's', 'ms', 'us' or None, got {time_unit!r}")
    return f"{time_us / scale[time_unit]:.3f}{time_unit}"


_SORT_KEYS = ("cpu_time", "cpu_time_total", "self_cpu_time_total", "count")


def _build_table(events, sort_by, header, row_limit, max_name_column_width, max_shapes_column_width,
                 top_level_events_only, time_unit):
    """The table torch.autograd.profiler_util._build_table prints, for the CPU columns."""
    if len(events) == 0:
        return ""
    if sort_by is not None:
        if sort_by not in _SORT_KEYS:
            raise AttributeError(f"'{type(events[0]).__name__}' object has no attribute '{sort_by}'")
        events = sorted(events, key=lambda e: getattr(e, sort_by), reverse=True)
    has_input_shapes = any(e.input_shapes for e in events)
    name_width = max(len(e.key) for e in events) + 4
    if max_name_column_width is not None:
        name_width = min(name_width, max_name_column_width)
    shapes_width = max(len(str(e.input_shapes)) for e in events) + 4
    if max_shapes_column_width is not None:
        shapes_width = min(shapes_width, max_shapes_column_width)
    headers = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]
    widths = [name_width] + [12] * 6
    if has_input_shapes:
        headers.append("Input Shapes")
        widths.append(shapes_width)
    row_format = "".join("{: >" + str(w) + "}  " for w in widths)
    separator = "".join("-" * w + "  " for w in widths)
    line_length = sum(w + 2 for w in widths) - 2
    total_self = sum(e.self_cpu_time_total for e in events)

    lines = []
    if header is not None:
        lines += ["=" * line_length, header]
    if top_level_events_only:
        lines += ["=" * line_length, "This report only display top-level ops statistics"]
    lines += [separator, row_format.format(*headers), separator]
    shown = 0
    for e in events:
        if shown == row_limit:
            break
        if top_level_events_only and e.cpu_parent is not None:
            continue
        shown += 1
        name = e.key
        if max_name_column_width is not None and len(name) >= max_name_column_width - 3:
            name = name[:max_name_column_width - 3] + "..."
        row = [name, _format_time_share(e.self_cpu_time_total, total_self), _in_unit(e.self_cpu_time_total, time_unit),
               _format_time_share(e.cpu_time_total, total_self), _in_unit(e.cpu_time_total, time_unit),
               _in_unit(e.cpu_time, time_unit), e.count]
        if has_input_shapes:
            row.append(str(e.input_shapes)[:shapes_width])
        lines.append(row_format.format(*row))
    lines += [separator, f"Self CPU time total: {_in_unit(total_self, time_unit)}"]
    return "\n".join(lines) + "\n"
