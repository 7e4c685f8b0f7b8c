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
