"""distml.cuda's memory statistics, over cupy's default memory pool.

cupy's pool plays the part of PyTorch's caching allocator: `used_bytes()` is memory_allocated (bytes
held by live arrays, each rounded up to the pool's 512-byte unit, as PyTorch rounds), `total_bytes()`
is memory_reserved (used plus cached for reuse). cupy keeps no peaks, so distml wraps the pool's
malloc (`install`, done when distml first uses CUDA) and reads both counts after every allocation:
the peaks are exact for allocations made through cupy's default pool after that point. The cost is
a Python call per allocation where cupy keeps both counts as running totals (its newest pool does);
older pools sum their chunks for each count, a cost that grows with the number of live arrays.
What differs from PyTorch: memory a program allocates before distml first touches CUDA, through another
allocator it sets with cupy.cuda.set_allocator, or in pinned host memory, is not in the peaks; and
memory_stats has no small/large pool breakdown, no allocation, segment or retry counts (cupy's pool
keeps none, and its memory pointers cannot be watched for their release).
"""
import threading

from distml import _backend

_peaks = {}  # device index -> [max allocated, max reserved]
_lock = threading.Lock()
_installed = False


def install():
    """Route cupy's allocations through `_tracked_malloc` (once), unless the program already chose an
    allocator other than cupy's default pool."""
    global _installed
    cupy = _backend.cupy
    pool = cupy.get_default_memory_pool()
    with _lock:
        if _installed:
            return
        _installed = True
        current = cupy.cuda.get_allocator()
        if getattr(current, "__self__", None) is not pool:
            return

        def _tracked_malloc(size):
            memory = pool.malloc(size)  # on the current device, whose counts used_bytes() reads
            peaks = _peaks.setdefault(memory.device_id, [0, 0])
            used, total = pool.used_bytes(), pool.total_bytes()
            if used > peaks[0]:
                peaks[0] = used
            if total > peaks[1]:
                peaks[1] = total
            return memory

        cupy.cuda.set_allocator(_tracked_malloc)


def stat(name, index):
    """"allocated", "reserved", "max_allocated" or "max_reserved" bytes of device `index`."""
    cupy = _backend.require_cupy()
    pool = cupy.get_default_memory_pool()
    with cupy.cuda.Device(index):
        used, total = pool.used_bytes(), pool.total_bytes()
    if name == "allocated":
        return used
    if name == "reserved":
        return total
    peaks = _peaks.setdefault(index, [used, total])
    return max(peaks[0], used) if name == "max_allocated" else max(peaks[1], total)


def stats(index):
    """memory_stats' dict for device `index`."""
    cupy = _backend.require_cupy()
    pool = cupy.get_default_memory_pool()
    with cupy.cuda.Device(index):
        used, total, free_blocks = pool.used_bytes(), pool.total_bytes(), pool.n_free_blocks()
    peaks = _peaks.setdefault(index, [used, total])
    return {"active_bytes.all.current": used, "active_bytes.all.peak": max(peaks[0], used),
            "allocated_bytes.all.current": used, "allocated_bytes.all.peak": max(peaks[0], used),
            "inactive_split.all.current": free_blocks,
            "reserved_bytes.all.current": total, "reserved_bytes.all.peak": max(peaks[1], total)}


def readable(n):
    """Bytes in the unit PyTorch's summary picks: B below 768 KiB, then KiB, MiB, GiB (whole units)."""
    for unit in ("B", "KiB", "MiB"):
        if n < 768 * 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GiB"


def reset_peaks(index):
    cupy = _backend.require_cupy()
    pool = cupy.get_default_memory_pool()
    with cupy.cuda.Device(index):
        _peaks[index] = [pool.used_bytes(), pool.total_bytes()]


def empty_cache():
    cupy = _backend.require_cupy()
    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()
