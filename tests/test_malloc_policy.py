"""Importing distml keeps freed large arrays mapped (glibc's mmap/trim thresholds raised), so a
step's temporaries do not fault their pages in again every step; a user's MALLOC_* settings win."""
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = """
import resource, sys
import numpy as np
if sys.argv[1] == "distml":
    import distml  # noqa: F401
for _ in range(3):  # warm up
    np.ones(4 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(4 << 20)  # 32 MiB, freed at once
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""

needs_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy is glibc's malloc")


def faults_per_array(mode, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(environ, PYTHONPATH=ROOT, **env))
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@needs_glibc
def test_freed_arrays_stay_mapped_after_import():
    # glibc's default unmaps each freed array and faults the next one in again (528 faults per
    # 32 MiB array here; the kernel maps several pages a fault); after import, none.
    assert faults_per_array("numpy") > 100
    assert faults_per_array("distml") < 5


@needs_glibc
def test_the_users_malloc_settings_win():
    assert faults_per_array("distml", MALLOC_MMAP_THRESHOLD_="65536") > 100
