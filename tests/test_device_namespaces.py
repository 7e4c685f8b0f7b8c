"""distml.device parsing, distml.cuda / distml.accelerator / distml.backends and the no-GPU errors,
each checked against PyTorch's CPU build (the oracle) on the same calls."""
import pickle
import warnings

import pytest
import torch

import distml
from distml import _backend

no_gpu = pytest.mark.skipif(distml.cuda.is_available(), reason="checks behaviour without a usable CUDA device")
no_cupy = pytest.mark.skipif(_backend.cupy is not None, reason="checks behaviour without cupy installed")


def outcome(fn):
    """("ok", value) or ("raise", exception type, first line of its message)."""
    try:
        return ("ok", fn())
    except Exception as error:  # noqa: BLE001 - the exception is the result being compared
        lines = str(error).splitlines()
        return ("raise", type(error), lines[0] if lines else "")


def same_message(ours, theirs):
    return ours.replace("distml.", "torch.") == theirs


def assert_same(ours, theirs):
    """Same value, or the same exception type and first message line (distml. read as torch.)."""
    assert ours[:2] == theirs[:2]
    if ours[0] == "raise":
        assert same_message(ours[2], theirs[2])


# --- distml.device -------------------------------------------------------------------------------

DEVICE_ARGS = [
    ("cpu",), ("cuda",), ("cuda:1",), ("cuda", 0), ("cuda", 3), ("cpu:0",), ("cpu:1",), ("cpu", 0), ("mps",),
    ("mps:0",), ("xpu",), ("xpu:3",), ("meta",), ("hip",), ("xla:2",), ("lazy",), ("privateuseone",),
    ("cuda", None),
    # errors
    ("foo",), ("CUDA",), ("foo_bar",), ("_",), ("a:1",), ("cu1da",), ("cuda1",), (" cuda",), ("cuda:",),
    ("cuda:-1",), ("cuda:01",), ("cuda:00",), ("cuda:+1",), ("cuda: 1",), ("cuda:1 ",), ("cuda:1:2",),
    ("cuda:a",), ("cuda:0a",), (":1",), ("",), ("foo:01",), ("foo", -1), ("foo:1", 1), ("cuda:0a", 1),
    ("cuda:0", 1), ("cpu:0", -1), ("cuda", -1), ("cuda", -2), ("cpu", -1), ("cuda", "0"), ("cuda", 1.0),
    ("cuda", True), (-1,), (True,), (1.0,), (None,), (3, 1),
]


def _device_summary(d):
    return (str(d), repr(d), d.type, d.index)


@pytest.mark.parametrize("args", DEVICE_ARGS, ids=repr)
def test_device_parsing_matches_torch(args):
    assert_same(outcome(lambda: _device_summary(distml.device(*args))),
                outcome(lambda: _device_summary(torch.device(*args))))


@pytest.mark.parametrize("kwargs", [dict(type="cuda", index=0), dict(type="cuda"), dict(type="cpu", index=1),
                                    dict(type="cuda", index=None), dict(type="cuda", index=-1)], ids=repr)
def test_device_keywords_match_torch(kwargs):
    ours = outcome(lambda: _device_summary(distml.device(**kwargs)))
    theirs = outcome(lambda: _device_summary(torch.device(**kwargs)))
    assert ours == theirs


def test_device_from_device_and_missing_type():
    assert _device_summary(distml.device(distml.device("cuda:2"))) == _device_summary(torch.device("cuda:2"))
    with pytest.raises(TypeError, match="argument 'type' \\(position 1\\) must be str, not distml.device"):
        distml.device(distml.device("cuda:2"), 1)
    with pytest.raises(TypeError):
        distml.device()


@no_cupy
@pytest.mark.parametrize("index", [0, 3])
def test_int_device_without_an_accelerator_matches_torch(index):
    with pytest.raises(RuntimeError, match="^Cannot access accelerator device when none is available.$"):
        distml.device(index)
    with pytest.raises(RuntimeError, match="^Cannot access accelerator device when none is available.$"):
        torch.device(index)


@pytest.mark.skipif(_backend.cupy is None, reason="an int names a cuda device only when cupy is installed")
def test_int_device_is_cuda_with_cupy():
    assert distml.device(1) == distml.device("cuda", 1)


EQUALITY = [("cuda", "cuda"), ("cuda:0", "cuda"), ("cuda", "cuda:0"), ("cpu", "cpu"), ("cpu", "foo"), ("cpu", 0),
            ("cuda:0", 0), ("cpu", None)]


@pytest.mark.parametrize("left, right", EQUALITY, ids=repr)
def test_device_never_equals_a_non_device_as_in_torch(left, right):
    assert (distml.device(left) == right) == (torch.device(left) == right) is False
    assert (right == distml.device(left)) == (right == torch.device(left)) is False
    assert (distml.device(left) != right) == (torch.device(left) != right) is True


@pytest.mark.parametrize("left, right", [("cuda:0", ("cuda", 0)), ("cpu", ("cpu", 0)), ("cpu:0", ("cpu", 0)),
                                         ("cuda", ("cuda", 0)), ("mps", ("mps",))], ids=repr)
def test_device_equality_and_hash_match_torch(left, right):
    ours, theirs = distml.device(left), distml.device(*right)
    assert (ours == theirs) == (torch.device(left) == torch.device(*right))
    if ours == theirs:
        assert hash(ours) == hash(theirs)
    assert {ours: 1}.get(left) is None  # a string does not find a device key, as in PyTorch


@pytest.mark.parametrize("spec", [("cpu",), ("cuda", 1), ("mps", 0), ("cpu", 0)])
def test_device_pickles_as_torch_reduces(spec):
    d = distml.device(*spec)
    assert d.__reduce__()[1] == torch.device(*spec).__reduce__()[1]
    assert pickle.loads(pickle.dumps(d)) == d


# --- tensors on devices distml cannot use --------------------------------------------------------

@no_gpu
@pytest.mark.parametrize("make", [
    lambda m: m.zeros(2, device="cuda"),
    lambda m: m.ones(2, device="cuda:0"),
    lambda m: m.tensor([1.0], device="cuda"),
    lambda m: m.zeros(2).to("cuda"),
    lambda m: m.zeros(2).to(m.device("cuda", 1)),
    lambda m: m.zeros(2).cuda(),
    lambda m: m.nn.Linear(2, 1).to("cuda"),
    lambda m: m.nn.Linear(2, 1).cuda(),
], ids=["zeros", "ones", "tensor", "to", "to-device", "Tensor.cuda", "Module.to", "Module.cuda"])
def test_cuda_without_a_device_raises_torchs_assertion_error(make):
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        make(torch)
    with pytest.raises(AssertionError) as error:
        make(distml)
    assert str(error.value).startswith("distml cannot use CUDA: ")
    assert _backend.cuda_unavailable_reason() in str(error.value)


@no_cupy
def test_cuda_error_names_the_cupy_import_error():
    with pytest.raises(AssertionError, match="cupy failed to import .*" + type(_backend.cupy_error).__name__):
        distml.zeros(1).to("cuda")


@pytest.mark.parametrize("kind", ["mps", "xpu", "hip", "xla", "vulkan", "ipu", "mtia"])
def test_moving_to_a_backend_distml_lacks_raises_torchs_type(kind):
    theirs = outcome(lambda: torch.zeros(1).to(kind))
    with pytest.raises(theirs[1]) as error:
        distml.zeros(1).to(kind)
    assert "distml holds tensors only on 'cpu' and 'cuda'" in str(error.value)


@pytest.mark.parametrize("kind", ["mps", "xpu", "hip", "xla", "vulkan", "mtia"])
def test_factories_on_a_backend_distml_lacks_raise_torchs_type(kind):
    theirs = outcome(lambda: torch.zeros(1, device=kind))
    with pytest.raises(theirs[1], match="distml holds tensors only on 'cpu' and 'cuda'"):
        _backend.device_array_module(kind)


def test_meta_tensors_are_not_supported():
    # PyTorch has meta tensors; distml has none and says so.
    with pytest.raises(NotImplementedError, match="distml has no meta tensors"):
        distml.zeros(1).to("meta")
    with pytest.raises(NotImplementedError, match="distml has no meta tensors"):
        _backend.device_array_module("meta")


def test_cpu_with_an_index_holds_cpu_tensors_as_in_torch():
    assert distml.zeros(1).to("cpu:1").device == distml.device("cpu")
    assert str(torch.zeros(1).to("cpu:1").device) == "cpu"
    assert not distml.zeros(1).is_cuda


# --- distml.cuda ---------------------------------------------------------------------------------

def _run(module, call):
    return outcome(lambda: eval(call, {"m": module}))


CUDA_SAME = [
    "m.cuda.is_available()", "m.cuda.device_count()", "m.cuda.is_initialized()", "m.cuda.empty_cache()",
    "m.cuda.memory_allocated()", "m.cuda.max_memory_allocated()", "m.cuda.memory_reserved()",
    "m.cuda.max_memory_reserved()", "m.cuda.memory_allocated(0)", "m.cuda.memory_allocated('cpu')",
    "m.cuda.max_memory_allocated('cpu')", "m.cuda.memory_reserved('cuda:3')",
    "m.cuda.current_device()", "m.cuda.init()", "m.cuda.synchronize()", "m.cuda.synchronize('cpu')",
    "m.cuda.synchronize(-1)", "m.cuda.get_device_name()", "m.cuda.get_device_name(0)",
    "m.cuda.get_device_properties()", "m.cuda.get_device_properties(0)", "m.cuda.get_device_capability()",
    "m.cuda.get_device_capability('cpu')", "m.cuda.mem_get_info()", "m.cuda.mem_get_info('cpu')",
    "m.cuda.reset_peak_memory_stats('cpu')", "m.cuda.initial_seed()",
    "m.cuda.set_device(-1)", "m.cuda.set_device('cpu')", "m.cuda.set_device('mps')", "m.cuda.set_device(None)",
    "m.cuda.set_device('cuda')", "m.cuda.set_device(m.device('cuda'))", "m.cuda.set_device(1.5)",
    "m.cuda.set_device(m.cuda.device(-1))",
    "m.cuda.manual_seed(1)", "m.cuda.manual_seed(1.5)", "m.cuda.manual_seed(-1)", "m.cuda.manual_seed(2 ** 64)",
    "m.cuda.manual_seed(True)", "m.cuda.manual_seed('12')", "m.cuda.manual_seed(m.tensor(3))",
    "m.cuda.manual_seed('a')", "m.cuda.manual_seed(None)", "m.cuda.manual_seed([1])",
    "m.cuda.manual_seed_all(1)", "m.cuda.manual_seed_all('x')", "m.cuda.seed()", "m.cuda.seed_all()",
    "m.cuda.device(1.5).idx", "m.cuda.device(-1).idx", "m.cuda.device('cuda').idx", "m.cuda.device(None).idx",
    "m.cuda.device(m.device('cuda', 2)).idx", "m.cuda.device(m.cuda.device(3)).idx", "m.cuda.device('cpu')",
    "m.cuda.device(-1).__enter__()",
]


@no_gpu
@pytest.mark.parametrize("call", CUDA_SAME)
def test_cuda_namespace_matches_torch_without_a_device(call):
    ours, theirs = _run(distml, call), _run(torch, call)
    assert ours[:2] == theirs[:2]
    if theirs[0] == "raise" and theirs[1] is AssertionError:
        assert ours[2].startswith("distml cannot use CUDA: ")
    elif theirs[0] == "raise":
        assert same_message(ours[2], theirs[2])


@no_gpu
@pytest.mark.parametrize("call", ["m.cuda.set_device(0)", "m.cuda.set_device('cuda:0')",
                                  "m.cuda.reset_peak_memory_stats()"])
def test_cuda_calls_torch_fails_on_by_accident_raise_its_no_cuda_assertion(call):
    # PyTorch's CPU build lacks the C binding here (AttributeError: torch._C has no _cuda_setDevice);
    # distml raises the AssertionError every other call needing a device raises.
    assert _run(torch, call)[1] is AttributeError
    assert _run(distml, call)[:2] == ("raise", AssertionError)


@no_gpu
def test_cuda_device_context_without_a_device():
    with pytest.raises(RuntimeError, match="compiled without CUDA support"):
        torch.cuda.device(0).__enter__()
    with pytest.raises(RuntimeError, match="distml cannot use CUDA"):
        with distml.cuda.device(0):
            pass
    with distml.cuda.device(None):  # a no-op, as PyTorch documents (its CPU build raises TypeError here)
        assert distml.zeros(1).device == distml.device("cpu")


def test_device_boilerplate_picks_the_cpu_as_torch_does():
    assert str(distml.device("cuda" if distml.cuda.is_available() else "cpu")) == (
        "cuda" if distml.cuda.is_available() else "cpu")
    assert distml.cuda.is_available() == (distml.cuda.device_count() > 0)


# --- distml.cuda.amp -----------------------------------------------------------------------------

class _CountingOptimizer:
    steps = 0

    def step(self, closure=None):
        self.steps += 1
        return closure() if closure else None


def _scaler_summary(module, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = module.cuda.amp.GradScaler(**kwargs)
    user_warnings = [str(w.message) for w in caught if w.category is UserWarning]
    loss, optimizer = module.ones(2, requires_grad=True), _CountingOptimizer()
    scaled = scaler.scale(loss)
    returned = scaler.step(optimizer, closure=lambda: 7)
    return dict(same_loss=scaled is loss, returned=returned, steps=optimizer.steps, scale=scaler.get_scale(),
                enabled=scaler.is_enabled(), state=scaler.state_dict(), update=scaler.update(),
                unscale=scaler.unscale_(optimizer), load=scaler.load_state_dict({"scale": 2.0}),
                warned=[("is enabled, but CUDA is not available" in w) for w in user_warnings])


def test_grad_scaler_disabled_matches_torch():
    assert _scaler_summary(distml, enabled=False) == _scaler_summary(torch, enabled=False)


@no_gpu
def test_grad_scaler_enabled_without_cuda_warns_and_disables_as_torch():
    ours, theirs = _scaler_summary(distml), _scaler_summary(torch)
    assert ours == theirs and ours["warned"] == [True]
    assert pickle.loads(pickle.dumps(distml.cuda.amp.GradScaler(enabled=False))).is_enabled() is False


@no_gpu
def test_autocast_without_cuda_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="CUDA is not available.*Disabling autocast"):
        context = distml.cuda.amp.autocast()
    with context:
        assert (distml.ones(2) * 2).dtype == distml.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with distml.cuda.amp.autocast(enabled=False):
            pass


# --- distml.accelerator --------------------------------------------------------------------------

ACCELERATOR_CALLS = [
    "m.accelerator.is_available()", "m.accelerator.device_count()", "m.accelerator.current_accelerator()",
    "m.accelerator.current_accelerator(check_available=True)", "m.accelerator.current_device_index()",
    "m.accelerator.set_device_index(0)", "m.accelerator.set_device_index(-5)",
    "m.accelerator.set_device_index(None)", "m.accelerator.set_device_index(1.5)",
    "m.accelerator.set_device_index('cpu')", "m.accelerator.synchronize()", "m.accelerator.synchronize(0)",
    "m.accelerator.synchronize(-1)", "m.accelerator.synchronize('cpu')",
    "m.accelerator.device_index(0).__enter__()", "m.accelerator.device_index(-1).__enter__()",
    "m.accelerator.device_index(None).__enter__()", "m.accelerator.empty_cache()",
    "m.accelerator.memory_allocated()", "m.accelerator.max_memory_allocated()", "m.accelerator.memory_reserved()",
    "m.accelerator.max_memory_reserved()", "m.accelerator.reset_peak_memory_stats()",
    "m.accelerator.get_memory_info()", "m.accelerator.memory_allocated('cpu')",
]


@no_cupy
@pytest.mark.parametrize("call", ACCELERATOR_CALLS)
def test_accelerator_matches_torch_without_one(call):
    ours, theirs = _run(distml, call), _run(torch, call)
    assert ours[:2] == theirs[:2]
    if theirs[0] == "raise":
        assert ours[2].startswith(theirs[2]) or same_message(ours[2], theirs[2])


def test_accelerator_agrees_with_cuda():
    assert distml.accelerator.is_available() == distml.cuda.is_available()
    assert distml.accelerator.device_count() == distml.cuda.device_count()
    expected = distml.device("cuda") if distml.cuda.is_available() else None
    assert distml.accelerator.current_accelerator(check_available=True) == expected


# --- distml.backends -----------------------------------------------------------------------------

FLAGS = [("cudnn", "enabled"), ("cudnn", "benchmark"), ("cudnn", "deterministic"), ("cudnn", "allow_tf32"),
         ("cuda.matmul", "allow_tf32")]


def _owner(module, path):
    owner = module.backends
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


@pytest.fixture
def restore_flags():
    saved = [(getattr(_owner(m, path), name), m, path, name) for m in (distml, torch) for path, name in FLAGS]
    yield
    for value, m, path, name in saved:
        setattr(_owner(m, path), name, value)


@pytest.mark.parametrize("path, name", FLAGS)
def test_backend_flag_defaults_match_torch(path, name):
    assert getattr(_owner(distml, path), name) is getattr(_owner(torch, path), name)


@pytest.mark.parametrize("path, name", FLAGS)
def test_backend_flags_round_trip_and_take_only_bools(path, name, restore_flags):
    for value in (True, False, True):
        setattr(_owner(distml, path), name, value)
        assert getattr(_owner(distml, path), name) is value
    for bad in (1, "x", None):
        ours = outcome(lambda: setattr(_owner(distml, path), name, bad))
        theirs = outcome(lambda: setattr(_owner(torch, path), name, bad))
        assert ours[:2] == theirs[:2] == ("raise", RuntimeError)
        assert ours[2] == f"distml.backends.{path}.{name} expects a bool, but got {type(bad).__name__}"
        assert theirs[2].endswith(f"expects a bool, but got {type(bad).__name__}")
    assert getattr(_owner(distml, path), name) is True


def test_unknown_matmul_attribute_raises_as_torch():
    for m in (distml, torch):
        with pytest.raises(AttributeError, match="^Unknown attribute foo$"):
            m.backends.cuda.matmul.foo
        with pytest.raises(AttributeError, match="^Unknown attribute foo$"):
            m.backends.cuda.matmul.foo = True


def test_cudnn_flags_are_module_attributes():
    import distml.backends.cudnn as cudnn
    assert cudnn is distml.backends.cudnn and cudnn.benchmark is False


@pytest.mark.parametrize("call", ["m.backends.cudnn.is_available()", "m.backends.cudnn.version()",
                                  "m.backends.mps.is_available()", "m.backends.mps.is_built()",
                                  "m.backends.openmp.is_available()"])
def test_backend_queries_match_torch(call):
    assert _run(distml, call) == _run(torch, call)


@no_cupy
def test_cuda_is_built_matches_torchs_cpu_build():
    assert distml.backends.cuda.is_built() is torch.backends.cuda.is_built() is False


def test_mkldnn_is_not_available():
    # PyTorch's CPU build links oneDNN and says True; distml has no oneDNN kernels.
    assert distml.backends.mkldnn.is_available() is False


@pytest.fixture
def restore_deterministic():
    saved = [(m, m.are_deterministic_algorithms_enabled(), m.is_deterministic_algorithms_warn_only_enabled())
             for m in (distml, torch)]
    yield
    for m, mode, warn_only in saved:
        m.use_deterministic_algorithms(mode, warn_only=warn_only)


@no_gpu
def test_deterministic_algorithms_mode_matches_torch(restore_deterministic):
    for mode, warn_only in [(True, False), (False, True), (True, True), (False, False)]:
        for m in (distml, torch):
            assert m.use_deterministic_algorithms(mode, warn_only=warn_only) is None
        assert distml.are_deterministic_algorithms_enabled() is torch.are_deterministic_algorithms_enabled() is mode
        assert (distml.is_deterministic_algorithms_warn_only_enabled()
                is torch.is_deterministic_algorithms_warn_only_enabled() is warn_only)


@pytest.mark.parametrize("args, kwargs", [((1,), {}), (("x",), {}), ((None,), {}), ((True,), {"warn_only": 1}),
                                          ((True, True), {})], ids=repr)
def test_deterministic_algorithms_bad_arguments_match_torch(args, kwargs, restore_deterministic):
    ours = outcome(lambda: distml.use_deterministic_algorithms(*args, **kwargs))
    theirs = outcome(lambda: torch.use_deterministic_algorithms(*args, **kwargs))
    assert ours[:2] == theirs[:2] == ("raise", TypeError)
    assert ours[2] == theirs[2].replace("_set_deterministic_algorithms", "use_deterministic_algorithms")
    assert distml.are_deterministic_algorithms_enabled() is False


def test_nn_parallel_is_reachable_from_nn_as_in_torch():
    import distml.nn as nn
    from distml.distributed.ddp import DistributedDataParallel
    assert nn.parallel.DistributedDataParallel is DistributedDataParallel


def test_data_parallel_without_gpus_calls_the_module_as_torch():
    import numpy as np
    import torch
    ours, theirs = distml.nn.DataParallel(distml.nn.Linear(2, 3)), torch.nn.DataParallel(torch.nn.Linear(2, 3))
    assert repr(ours) == repr(theirs) and ours.device_ids == theirs.device_ids == []
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.weight", "module.bias"]
    ours.load_state_dict({k: distml.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    x = np.arange(4.0, dtype=np.float32).reshape(2, 2)
    np.testing.assert_allclose(ours(distml.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-6)


def test_version_and_bf16_support_answer_as_torchs_cpu_build():
    import torch
    assert distml.version.__version__ == distml.__version__
    assert distml.version.cuda is torch.version.cuda is None
    assert distml.cuda.is_bf16_supported() is torch.cuda.is_bf16_supported() is False
