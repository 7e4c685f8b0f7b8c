"""The sbatch lines the slurm/ scripts document for small nodes, run as written on the real two-node
SLURM cluster of slurm/local_cluster.sh (see test_slurm.py), with the examples as the program."""
import re

import pytest

from test_slurm import REPO, cluster  # noqa: F401  (the fixture: a cluster for this module)


def documented_line(script, program):
    """The `sbatch ...` example in the header of slurm/<script>, its program replaced by `program`."""
    header = (REPO / "slurm" / script).read_text()
    line = re.search(r"^#\s+(sbatch --gpus-per-node=0 --cpus-per-task=1 .*)$", header, re.M)[1].split()
    assert line[-1].endswith(".py") and line[-2].startswith("slurm/"), line
    return line[1:-2], line[-2].removeprefix("slurm/"), [str(REPO / "examples" / program)]


def epoch_losses(output):
    return [float(m) for m in re.findall(r"^epoch \d+/\d+: train loss ([0-9.]+)", output, re.M)]


@pytest.mark.parametrize("script, program", [
    ("single_node.sbatch", "cifar_resnet.py"),
    ("multi_node.sbatch", "char_transformer.py"),
])
def test_small_node_lines_run_the_examples(cluster, script, program):  # noqa: F811
    sbatch_args, script_name, program_args = documented_line(script, program)
    cluster.env["PYTHONPATH"] = str(REPO)  # the jobs import distml from this checkout
    state, output = cluster.submit(script_name, sbatch_args, [*program_args, "--no-progress"])
    assert state == "COMPLETED", output
    assert output.count("2 ranks") == 1, output  # data-parallel, and only rank 0 prints
    losses = epoch_losses(output)
    assert len(losses) >= 2 and losses[-1] < losses[0], output


def test_local_cluster_example_line_fits_its_nodes():
    """local_cluster.sh's own example asks for what its nodes have: no GPU, one CPU per task."""
    header = (REPO / "slurm" / "local_cluster.sh").read_text()
    line = re.search(r"^#\s+(sbatch .*)$", header, re.M)[1]
    assert "--gpus-per-node=0" in line and "--cpus-per-task=1" in line, line
