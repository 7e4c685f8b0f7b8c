"""get_backend() reports the name a group was made with, lower-cased, as torch.distributed does."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = """
import json, sys
import distml.distributed as dist
name = json.loads(sys.argv[1])
if name == "default":
    dist.init_process_group()
else:
    dist.init_process_group(name)
print(json.dumps([dist.get_backend(), dist.get_backend(dist.new_group()),
                  dist.get_backend(dist.new_group([0], backend="mpi")),
                  dist.get_backend(dist.new_group([0], backend="gloo"))]))
"""


def test_group_world_is_none_before_init_and_the_world_after():
    script = ("import distml.distributed as dist\n"
              "assert dist.group.WORLD is None and dist.GroupMember.WORLD is None\n"
              "dist.init_process_group('gloo')\n"
              "assert dist.group.WORLD is dist.GroupMember.WORLD and dist.get_world_size(dist.group.WORLD) == 1\n"
              "dist.destroy_process_group(dist.group.WORLD)\n"
              "assert dist.group.WORLD is None and not dist.is_initialized()\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = REPO
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("backend, world, groups", [
    ("gloo", "gloo", "gloo"), ("GLOO", "gloo", "gloo"), ("cpu:gloo", "cpu:gloo", "cpu:gloo"),
    ("mpi", "mpi", "mpi"), ("default", "mpi", "mpi"),
], ids=["gloo", "upper_case", "cpu_gloo", "mpi_name", "default"])  # id "mpi": pytest-mpi skips it
def test_get_backend_names_the_backend_of_the_group(backend, world, groups):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_COMM_WORLD", "PMI_")) and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = REPO
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(backend)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the world's name, a new group's inherited one, then the names new_group was given
    assert json.loads(done.stdout.splitlines()[-1]) == [world, groups, "mpi", "gloo"]
