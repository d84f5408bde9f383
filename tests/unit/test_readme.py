"""The README is a landing page: short, the command CI runs, and a link to each page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The README's limit: longer, and reference material belongs in docs/.
MAX_LINES = 200


def shell_lines(markdown: str) -> list[str]:
    """Every line of the ``sh`` code blocks of ``markdown``, comments stripped."""
    blocks = re.findall(r"^```sh\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]


def test_the_readme_is_a_landing_page_under_the_line_limit() -> None:
    lines = len(README.splitlines())
    assert lines < MAX_LINES, f"README.md has {lines} lines: move reference material to docs/"


def test_the_readme_shows_the_test_command_ci_runs_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[-1].strip()
    assert command in shell_lines(README), f"README.md does not show {command!r}"
    assert "./dev serve" in shell_lines(README)


def test_the_readme_links_every_page_of_docs() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+)", README))
    pages = {path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md")}
    assert pages, "docs/ has no pages"
    assert pages <= linked, f"README.md links none of {sorted(pages - linked)}"
