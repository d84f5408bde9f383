"""The documentation stays true to the code and to itself: settings tables against the settings
the code knows, every relative link to a file (and heading) of the repository, and no pointer to
anything outside it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from sessiond.settings import Settings, env_name
from sessiond.verifier.settings import VerifierSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: The pages whose links must resolve: the landing page, the reference, benchmarks, wire contract.
PAGES = (
    ROOT / "README.md",
    *sorted(DOCS.glob("*.md")),
    ROOT / "bench" / "README.md",
    ROOT / "proto" / "README.md",
)
#: A path outside the repository that the project once pointed at; built so that it does not
#: match this file itself.
OUTSIDE = "shared" + "/"
#: What the no-outside-pointer scan reads.
SCANNED = (ROOT / "README.md", DOCS, ROOT / "src", ROOT / "tests")

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)


def prose(markdown: str) -> str:
    """``markdown`` without its fenced code blocks (shell comments are not headings)."""
    return _FENCE.sub("", markdown)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(h) for h in _HEADING.findall(prose(path.read_text(encoding="utf-8")))}


def section(path: Path, title: str) -> str:
    """The text of ``path`` under ``## title``, up to the next heading of that level or above."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = re.search(r"\n#{1,2} ", text[start + 1 :])
    return text[start : start + 1 + end.start() if end else None]


def documented(text: str) -> set[str]:
    return set(re.findall(r"^\| `(SESSIOND_[A-Z_]+)` \|", text, re.MULTILINE))


@pytest.mark.parametrize(
    ("page", "title", "settings"),
    [("configuration.md", None, Settings), ("verifier.md", "Settings", VerifierSettings)],
    ids=["service", "verifier"],
)
def test_docs_document_every_setting_and_only_settings_that_exist(
    page: str, title: str | None, settings: type[msgspec.Struct]
) -> None:
    path = DOCS / page
    text = section(path, title) if title else path.read_text(encoding="utf-8")
    known = {env_name(field) for field in settings.__struct_fields__}
    assert documented(text) == known


def links(path: Path) -> Iterator[str]:
    """Every relative link target of ``path``'s prose (no URLs, no mail addresses)."""
    for target in _LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_links_resolve_inside_the_repository(page: Path) -> None:
    broken = []
    for target in links(page):
        file, _, fragment = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_docs_helpers_catch_what_they_are_for(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Two words: `here`\n\n```sh\n# not a heading\n```\n"
        "[a](other.md#x) [b](https://example.com) [c](#two-words-here) ![d](img.png)\n"
    )
    assert anchors(page) == {"two-words-here"}
    assert list(links(page)) == ["other.md#x", "#two-words-here", "img.png"]


def scanned_files() -> Iterator[Path]:
    for root in SCANNED:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            parts = path.relative_to(ROOT).parts
            if path.is_file() and not any(p == "__pycache__" or p.startswith(".") for p in parts):
                yield path


def test_docs_and_code_never_point_outside_the_repository() -> None:
    found = [
        path.relative_to(ROOT).as_posix()
        for path in scanned_files()
        if OUTSIDE.encode() in path.read_bytes()
    ]
    assert not found, f"mention {OUTSIDE!r}, a path outside the repository: {found}"
