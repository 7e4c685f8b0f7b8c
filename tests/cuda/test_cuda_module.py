"""distml.cuda on a CUDA device: the device functions against torch.cuda's answers (where this PyTorch
has CUDA), the device context manager, streams and events, and the memory statistics over cupy's pool.
Runs only where a CUDA device is usable."""
import numpy as np
import pytest
import torch

import distml
from distml import _backend

pytestmark = pytest.mark.skipif(not distml.cuda.is_available(),
                                reason=f"needs a CUDA device: {_backend.cuda_unavailable_reason()}")
torch_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="this PyTorch has no CUDA to compare with")

cupy = _backend.cupy
MiB = 2 ** 20


def test_device_queries():
    count = distml.cuda.device_count()
    assert count == cupy.cuda.runtime.getDeviceCount() >= 1
    distml.cuda.init()
    assert distml.cuda.is_initialized()
    assert distml.cuda.current_device() == 0
    distml.cuda.set_device(0)
    distml.cuda.set_device("cuda:0")
    distml.cuda.set_device(-1)  # a no-op, as in PyTorch
    assert distml.cuda.current_device() == 0
    props = distml.cuda.get_device_properties(0)
    assert isinstance(props.name, str) and props.name == distml.cuda.get_device_name() == distml.cuda.get_device_name(0)
    assert props.total_memory > 2 ** 30 and props.multi_processor_count > 0
    assert distml.cuda.get_device_capability() == (props.major, props.minor)
    assert f"{props.major}{props.minor}" == cupy.cuda.Device(0).compute_capability  # cupy's form: "90"
    assert distml.cuda.get_device_properties("cuda:0").name == props.name
    assert "total_memory=" in repr(props) and props.name in repr(props)
    free, total = distml.cuda.mem_get_info()
    assert 0 < free <= total <= props.total_memory
    assert distml.cuda.is_bf16_supported() in (True, False)
    distml.cuda.synchronize()
    distml.cuda.synchronize(0)
    with pytest.raises(ValueError, match="Expected a cuda device, but got: cpu"):
        distml.cuda.mem_get_info("cpu")
    with pytest.raises(AssertionError, match="Invalid device id"):
        distml.cuda.get_device_properties(count)
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        distml.cuda.set_device(count)


@torch_cuda
def test_device_queries_match_torch():
    assert distml.cuda.device_count() == torch.cuda.device_count()
    ours, theirs = distml.cuda.get_device_properties(0), torch.cuda.get_device_properties(0)
    for field in ("name", "major", "minor", "total_memory", "multi_processor_count", "is_integrated",
                  "is_multi_gpu_board", "max_threads_per_multi_processor", "warp_size", "L2_cache_size"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert distml.cuda.get_device_name() == torch.cuda.get_device_name()
    assert distml.cuda.get_device_capability() == torch.cuda.get_device_capability()
    assert distml.cuda.is_bf16_supported() == torch.cuda.is_bf16_supported()
    assert distml.cuda.mem_get_info()[1] == torch.cuda.mem_get_info()[1]


def test_device_context_manager():
    with distml.cuda.device(0):
        assert distml.cuda.current_device() == 0
        assert distml.zeros(1, device="cuda").device == distml.device("cuda", 0)
    with distml.cuda.device(None), distml.cuda.device(-1):
        assert distml.cuda.current_device() == 0
    last = distml.cuda.device_count() - 1
    with distml.cuda.device(last):
        assert distml.cuda.current_device() == last
        assert distml.ones(2, device="cuda").device.index == last
        assert distml.tensor([1.0]).cuda().device.index == last
    assert distml.cuda.current_device() == 0


# ---- streams and events ----

def test_stream_context_sets_the_current_stream(rng):
    data = rng.standard_normal((512, 512)).astype(np.float32)
    x = distml.tensor(data).cuda()
    default = distml.cuda.current_stream()
    assert default == distml.cuda.current_stream(0)
    assert distml.cuda.default_stream().cuda_stream == 0
    s = distml.cuda.Stream()
    assert s.device == distml.device("cuda", 0) and s.cuda_stream != 0 and s != default
    s.wait_stream(default)  # x was written on the default stream
    with distml.cuda.stream(s) as entered:
        assert entered is s and distml.cuda.current_stream() == s
        assert cupy.cuda.get_current_stream().ptr == s.cuda_stream
        y = x @ x
    assert distml.cuda.current_stream() == default
    s.synchronize()
    assert s.query()
    np.testing.assert_allclose(y.cpu().numpy(), data @ data, rtol=1e-4, atol=1e-3)
    with distml.cuda.stream(None):
        assert distml.cuda.current_stream() == default


def test_set_stream_and_priority():
    low, high = distml.cuda.Stream(priority=0), distml.cuda.Stream(priority=-1)
    assert high.priority <= low.priority
    before = distml.cuda.current_stream()
    distml.cuda.set_stream(high)
    try:
        assert distml.cuda.current_stream() == high
    finally:
        distml.cuda.set_stream(before)
    assert distml.cuda.current_stream() == before


def test_events_order_streams_and_time_work(rng):
    start, end = distml.cuda.Event(enable_timing=True), distml.cuda.Event(enable_timing=True)
    x = distml.randn(2048, 2048, device="cuda")
    start.record()
    for _ in range(5):
        x = x @ x / 2048
    end.record()
    end.synchronize()
    assert start.query() and end.query()
    assert start.elapsed_time(end) > 0
    s = distml.cuda.Stream()
    done = distml.cuda.current_stream().record_event()
    done.wait(s)
    with distml.cuda.stream(s):
        y = x * 2
    marker = s.record_event(distml.cuda.Event(blocking=True))
    marker.synchronize()
    np.testing.assert_allclose(y.cpu().numpy(), x.cpu().numpy() * 2, rtol=1e-6)
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        distml.cuda.Event().elapsed_time(distml.cuda.Event())
    with pytest.raises(NotImplementedError, match="interprocess=True"):
        distml.cuda.Event(interprocess=True)


# ---- memory statistics ----

def test_memory_stats_follow_allocations():
    distml.cuda.synchronize()
    distml.cuda.empty_cache()
    base = distml.cuda.memory_allocated()
    assert distml.cuda.memory_reserved() >= base
    x = distml.empty(MiB, dtype=distml.float32, device="cuda")  # 4 MiB
    assert distml.cuda.memory_allocated() - base == 4 * MiB
    assert distml.cuda.memory_allocated(0) == distml.cuda.memory_allocated("cuda:0") == base + 4 * MiB
    distml.cuda.reset_peak_memory_stats()
    assert distml.cuda.max_memory_allocated() == base + 4 * MiB
    y = distml.empty(2 * MiB, dtype=distml.float32, device="cuda")  # 8 MiB more
    del y
    assert distml.cuda.memory_allocated() == base + 4 * MiB
    assert distml.cuda.max_memory_allocated() == base + 12 * MiB
    assert distml.cuda.max_memory_reserved() >= base + 12 * MiB
    assert distml.cuda.memory_reserved() >= base + 12 * MiB  # the freed 8 MiB stays cached
    distml.cuda.empty_cache()
    assert distml.cuda.memory_reserved() < base + 12 * MiB
    distml.cuda.reset_peak_memory_stats(0)
    assert distml.cuda.max_memory_allocated() == distml.cuda.memory_allocated() == base + 4 * MiB
    del x
    assert distml.cuda.memory_allocated() == base


def test_memory_stats_and_summary():
    x = distml.empty(MiB, dtype=distml.float32, device="cuda")
    stats = distml.cuda.memory_stats()
    assert stats["allocated_bytes.all.current"] == distml.cuda.memory_allocated()
    assert stats["allocated_bytes.all.peak"] == distml.cuda.max_memory_allocated()
    assert stats["reserved_bytes.all.current"] == distml.cuda.memory_reserved() >= 4 * MiB
    assert stats["reserved_bytes.all.peak"] == distml.cuda.max_memory_reserved()
    assert stats["active_bytes.all.current"] == stats["allocated_bytes.all.current"]
    summary = distml.cuda.memory_summary()
    assert "Allocated memory" in summary and "GPU reserved memory" in summary and "device ID 0" in summary
    del x


@torch_cuda
def test_memory_stats_count_as_torchs_do():
    # The same allocations move both counters by the same bytes (both round to 512-byte blocks).
    torch.cuda.synchronize()
    ours_base, theirs_base = distml.cuda.memory_allocated(), torch.cuda.memory_allocated()
    ours = [distml.empty(n, dtype=distml.float32, device="cuda") for n in (1, 100, 1000, 12345)]
    theirs = [torch.empty(n, dtype=torch.float32, device="cuda") for n in (1, 100, 1000, 12345)]
    assert distml.cuda.memory_allocated() - ours_base == torch.cuda.memory_allocated() - theirs_base
    del ours, theirs


def test_training_peak_exceeds_the_resting_memory():
    model = distml.nn.Sequential(distml.nn.Linear(1024, 4096), distml.nn.ReLU(), distml.nn.Linear(4096, 10)).cuda()
    x = distml.randn(512, 1024, device="cuda")
    distml.cuda.synchronize()
    resting = distml.cuda.memory_allocated()
    distml.cuda.reset_peak_memory_stats()
    model(x).sum().backward()
    distml.cuda.synchronize()
    activations = 512 * 4096 * 4
    assert distml.cuda.max_memory_allocated() >= resting + activations
