"""distml.onnx.export: trace the model, check the traces agree, convert each call, write the file."""
import inspect
import os
import warnings

import numpy as np

from distml._backend import get_array_module
from distml.onnx import _ops
from distml.onnx._graph import Context, Graph
from distml.onnx._trace import Ref, host, trace
from distml.onnx.errors import OnnxExporterError, UnsupportedOperatorError
from distml.serialization import write_atomically
from distml.tensor import Tensor

DEFAULT_OPSET, MIN_OPSET, MAX_OPSET = 20, 13, 21


def export(model, args=(), f=None, *, kwargs=None, verbose=None, input_names=None, output_names=None,
           opset_version=None, dynamo=False, export_params=True, dynamic_axes=None, do_constant_folding=True):
    """Write `model` as an ONNX graph to `f` (a path, written atomically, or a binary file object),
    as torch.onnx.export's TorchScript exporter does (dynamo=False):

        distml.onnx.export(model, (x,), "model.onnx", input_names=["input"], output_names=["logits"],
                           dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    The model runs on `args` (and `kwargs`) in eval mode, without autograd, and each primitive it
    applies becomes ONNX nodes; parameters and buffers become initializers named by their state_dict
    keys (graph inputs with export_params=False). Tensors in args/kwargs are the graph inputs; other
    arguments are fixed at their traced values. The model runs once more with the input values
    shuffled, and with dynamic_axes once per axis with that axis doubled: sizes the ops bake in
    (reshape targets, slice bounds, zero states) that follow an axis are computed from the inputs'
    shapes at run time, and anything else that changes (a constant made outside the traced ops, such
    as a comparison's result) raises OnnxExporterError. With do_constant_folding, ops that depend on
    no graph input become initializers.
    """
    try:
        import onnx
    except ImportError as error:
        raise ImportError("distml.onnx.export needs the onnx package (pip install onnx)") from error
    from distml.nn import Module
    if not isinstance(model, Module):
        raise TypeError(f"distml.onnx.export expects a distml.nn.Module, got {type(model).__name__}")
    if dynamo:
        raise NotImplementedError("distml.onnx.export(dynamo=True) (the torch.export-based exporter returning an "
                                  "ONNXProgram) is not supported; distml traces the model as the TorchScript "
                                  "exporter does (dynamo=False) and writes the file f")
    if f is None:
        raise ValueError("distml.onnx.export needs f: a path or a writable binary file")
    opset = DEFAULT_OPSET if opset_version is None else int(opset_version)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"Unsupported ONNX opset version: {opset}. distml.onnx.export supports opset versions "
                         f"{MIN_OPSET} to {MAX_OPSET}")
    args, kwargs = _split_args(args, kwargs)
    tensors = [(i, a) for i, a in enumerate(args) if isinstance(a, Tensor)]
    tensors += [(k, v) for k, v in kwargs.items() if isinstance(v, Tensor)]
    names = _input_names(model, tensors, input_names)
    axes = _dynamic_axes(dynamic_axes)

    params, seen = [], set()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            params.append((t, Ref("param", name, t.array, not export_params, host(t.array))))

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        base_inputs = [(t, Ref("input", n, t.array, True)) for (_, t), n in zip(tensors, names)]
        calls, outputs = trace(model, args, kwargs, base_inputs, params)
        symbols = _input_symbols(axes, names, base_inputs)
        # Each trace again shuffles the input values: what the graph holds as constants must not change.
        variants = {s: _trace_again(model, args, kwargs, tensors, names, params, _doubled(axes, s),
                                    f"dynamic axis '{s}' twice as long") for s in symbols}
        shuffled = None if variants or not tensors else _trace_again(
            model, args, kwargs, tensors, names, params, lambda array, name: _shuffled(array),
            "the input values shuffled")
    finally:
        for m, training in modes:
            m.training = training

    needed = _needed(calls, outputs)
    for call in needed:
        if call.op not in _ops.CONVERTERS:
            raise UnsupportedOperatorError(call.op.__name__, opset, call.module,
                                           f"distml.onnx has no converter for {call.op.__module__}.{call.op.__name__}")
    if shuffled is not None:
        _compare(calls, outputs, *shuffled, needed, "the input values", None)
    for symbol, (variant_calls, variant_outputs) in variants.items():
        _compare(calls, outputs, variant_calls, variant_outputs, needed,
                 f"the input values or the size of dynamic axis '{symbol}'", symbol)

    for call in needed:  # what follows a dynamic axis (a zeros(batch, n) state) cannot be folded to a constant
        if any(r.dynamic or any(r.symbols) for r in call.refs() + call.outputs):
            for ref in call.outputs:
                ref.dynamic = True
    out_names = _output_names(output_names, len(outputs))
    for name in axes:
        if name not in names and name not in out_names:
            warnings.warn(f"Provided key {name} for dynamic axes is not a valid input/output name")
    graph = Graph(opset, do_constant_folding)
    graph.taken.update(out_names)
    for (_, ref), name in zip(base_inputs, names):
        graph.add_input(ref, name)
    graph.symbols = {s: (base_inputs[i][1], axis) for s, (i, axis) in symbols.items()}
    _convert(graph, calls, needed, variants)
    onnx_model = _model_proto(graph, outputs, out_names, axes)
    if verbose:
        print(onnx.helper.printable_graph(onnx_model.graph))
    if onnx_model.ByteSize() >= 2 ** 31:
        raise OnnxExporterError("the model is larger than 2 GiB, the most one ONNX protobuf holds; distml.onnx.export "
                                "does not write external data files")
    _write(onnx_model.SerializeToString(), f)


def _convert(graph, calls, needed, variants):
    """Each needed call through its converter (with constant folding, only those that depend on an input)."""
    index = {id(call): k for k, call in enumerate(calls)}
    for call in needed:
        if graph.fold and not call.outputs[0].dynamic:
            continue
        convert, _ = _ops.CONVERTERS[call.op]
        k = index[id(call)]
        results = convert(Context(graph, call, [(s, v[0][k]) for s, v in variants.items()]))
        for ref, name in zip(call.outputs, results if isinstance(results, list) else [results]):
            graph.names[id(ref)] = name


def _model_proto(graph, outputs, out_names, axes):
    """The ModelProto: the graph's outputs renamed (or an Identity where a value cannot be renamed),
    inputs and outputs with dim_params for dynamic dims."""
    from onnx import helper, numpy_helper
    from distml import __version__
    rename, produced = {}, {o for node in graph.nodes for o in node[2]}
    for ref, name in zip(outputs, out_names):
        source = graph.value(ref, "output")
        if source in produced and source not in rename:
            rename[source] = name
        else:
            graph.nodes.append(("Identity", [rename.get(source, source)], [name], graph.unique("/Identity"), {}))

    def value_info(name, ref):
        declared, dims = axes.get(name, {}), []
        for d, size in enumerate(ref.shape):
            symbols = ref.symbols[d]
            if d in declared:
                dims.append(declared[d])
            elif len(symbols) == 1 and size == graph.symbol_size(min(symbols)):
                dims.append(min(symbols))  # the size of that dynamic axis itself
            elif symbols:
                dims.append(f"{name}_dim_{d}")
            else:
                dims.append(int(size))
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(ref.dtype), dims)

    nodes = [helper.make_node(op, [rename.get(i, i) for i in ins], [rename.get(o, o) for o in outs], name=name,
                              **attributes) for op, ins, outs, name, attributes in graph.nodes]
    onnx_graph = helper.make_graph(
        nodes, "main_graph", [value_info(name, ref) for name, ref in graph.inputs],
        [value_info(name, ref) for name, ref in zip(out_names, outputs)],
        initializer=[numpy_helper.from_array(np.asarray(a, order="C"), name) for name, a in graph.initializers.items()])
    opsets = [helper.make_opsetid("", graph.opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="distml", producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _split_args(args, kwargs):
    if isinstance(args, Tensor):
        args = (args,)
    args = tuple(args)
    if args and isinstance(args[-1], dict) and kwargs is None:  # torch's (x, {"mask": m}) form
        args, kwargs = args[:-1], args[-1]
    return args, dict(kwargs or {})


def _input_names(model, tensors, input_names):
    """Given names first, then forward's parameter names (input_{i} where it has none)."""
    given = list(input_names or [])
    if len(given) > len(tensors):
        raise ValueError(f"input_names has {len(given)} names but the model gets {len(tensors)} tensor inputs")
    try:
        parameters = [p.name for p in inspect.signature(model.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    names = []
    for k, (where, _) in enumerate(tensors):
        if k < len(given):
            names.append(given[k])
        elif isinstance(where, str):
            names.append(where)
        else:
            names.append(parameters[where] if where < len(parameters) else f"input_{where}")
    if len(set(names)) != len(names):
        raise ValueError(f"input names must be distinct, got {names}")
    return names


def _output_names(given, n):
    given = list(given or [])
    if len(given) > n:
        raise ValueError(f"output_names has {len(given)} names but the model returns {n} tensors")
    return given + [("output" if n == 1 else f"output_{k}") for k in range(len(given), n)]


def _dynamic_axes(dynamic_axes):
    """{value name: {axis: axis name}}; a list of axes gets torch's names ("input_dynamic_axes_1")."""
    axes = {}
    for name, spec in (dynamic_axes or {}).items():
        if isinstance(spec, dict):
            axes[name] = {int(a): str(s) for a, s in spec.items()}
        else:
            axes[name] = {int(a): f"{name}_dynamic_axes_{k + 1}" for k, a in enumerate(spec)}
    return axes


def _input_symbols(axes, names, inputs):
    """dynamic axis name -> (index of the first input that has it, axis), and each input Ref's symbols."""
    symbols = {}
    for i, (name, (_, ref)) in enumerate(zip(names, inputs)):
        declared = {}
        for axis, symbol in axes.get(name, {}).items():
            ndim = len(ref.shape)
            if not -ndim <= axis < ndim:
                raise ValueError(f"dynamic axis {axis} of input '{name}' is out of range for its {ndim} dims")
            declared[axis % ndim] = symbol
            symbols.setdefault(symbol, (i, axis % ndim))
        ref.symbols = tuple(frozenset([declared[d]]) if d in declared else frozenset() for d in range(len(ref.shape)))
    return symbols


def _doubled(axes, symbol):
    """Each input shuffled and repeated along its axes named `symbol` (which doubles them)."""
    def change(array, name):
        array = _shuffled(array)
        for axis, s in axes.get(name, {}).items():
            if s == symbol:
                array = get_array_module(array).concatenate([array, array], axis)
        return array
    return change


def _shuffled(array):
    """The input's values in another order (the same values, so still valid indices or masks)."""
    order = np.random.default_rng(0).permutation(array.size)
    return array.reshape(-1)[get_array_module(array).asarray(order)].reshape(array.shape)


def _trace_again(model, args, kwargs, tensors, names, params, change, what):
    """The trace with each tensor input replaced by change(its array, its name)."""
    changed = {}
    for (_, t), name in zip(tensors, names):
        changed.setdefault(id(t), Tensor(change(t.array, name)))
    new_args = tuple(changed.get(id(a), a) if isinstance(a, Tensor) else a for a in args)
    new_kwargs = {k: changed.get(id(v), v) if isinstance(v, Tensor) else v for k, v in kwargs.items()}
    inputs = [(changed[id(t)], Ref("input", n, changed[id(t)].array, True)) for (_, t), n in zip(tensors, names)]
    try:
        return trace(model, new_args, new_kwargs, inputs, params)
    except OnnxExporterError:
        raise
    except Exception as error:
        raise OnnxExporterError(f"tracing the model again with {what} failed ({type(error).__name__}: {error}); "
                                "distml.onnx.export runs the model on such inputs to check that the trace holds "
                                "for inputs other than the example") from error


def _needed(calls, outputs):
    """The calls that the outputs depend on, in trace order."""
    wanted = {id(r) for r in outputs}
    needed = []
    for call in reversed(calls):
        if any(id(o) in wanted for o in call.outputs):
            needed.append(call)
            wanted.update(id(r) for r in call.refs())
    return needed[::-1]


def _compare(calls, outputs, other_calls, other_outputs, needed, change, symbol):
    """Check that the trace with inputs changed (`change` says how) has the same ops and attributes; with a
    `symbol` (a dynamic axis that was doubled), record which dims it changed."""
    def where(call):
        return f"{call.op.__name__}" + (f" in module '{call.module}'" if call.module else "")

    for a, b in zip(calls, other_calls):
        if a.op is not b.op:
            raise OnnxExporterError(f"the ops the model runs change with {change} (first at {where(a)} against "
                                    f"{where(b)}); distml.onnx.export records the ops of one run")
    if len(calls) != len(other_calls):
        raise OnnxExporterError(f"the number of ops the model runs changes with {change}")
    wanted = {id(c) for c in needed}
    for a, b in zip(calls, other_calls):
        if id(a) not in wanted:
            continue
        key = _ops.CONVERTERS[a.op][1]
        if not key(a) == key(b):
            raise OnnxExporterError(
                f"{where(a)} depends on {change} in a way the exported graph cannot follow: its parameters or "
                f"constant inputs change ({_difference(key(a), key(b))}). Constants are the tensors made outside "
                "distml's traced primitives (comparisons, argmax, tensors built from shapes or .item()); "
                + ("export with that axis static" if symbol else "they must not depend on the input values"))
        if symbol is not None:
            _mark(a.outputs, b.outputs, symbol)
            constants = [(x, y) for x, y in zip(a.refs(), b.refs()) if x.kind == "const" and x.shape != y.shape]
            if any(2 * p != q for x, y in constants for p, q in zip(x.shape, y.shape) if p != q):
                raise OnnxExporterError(f"a constant input of {where(a)} changes shape with {change} other than in "
                                        "proportion to it; export with that axis static")
            _mark([x for x, _ in constants], [y for _, y in constants], symbol)
        elif any(x.shape != y.shape for x, y in zip(a.outputs, b.outputs)):
            raise OnnxExporterError(f"the output shape of {where(a)} depends on {change}")
    for a, b in zip(outputs, other_outputs):
        if a.kind == "const" and not a == b:
            raise OnnxExporterError(f"an output of the model depends on {change}, but no traced op made it (it was "
                                    "computed outside distml's primitives: a comparison, argmax, ...), so the graph "
                                    "would return a constant")
    if symbol is not None:
        _mark(outputs, other_outputs, symbol)


def _mark(refs, others, symbol):
    for ref, other in zip(refs, others):
        if len(ref.shape) != len(other.shape):
            raise OnnxExporterError(f"the rank of a value changes with the size of dynamic axis '{symbol}'")
        ref.symbols = tuple(s | {symbol} if a != b else s for s, a, b in zip(ref.symbols, ref.shape, other.shape))


def _difference(a, b):
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        for x, y in zip(a, b):
            if not x == y:
                return _difference(x, y)
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if not a[k] == b.get(k):
                return f"{k}: " + _difference(a[k], b.get(k))
    return f"{a!r} vs {b!r}"


def _write(data, f):
    if not isinstance(f, (str, os.PathLike)):
        f.write(data)
        return
    write_atomically(f, lambda out: out.write(data))
