"""No import runs upward: a module of ``src/sessiond`` imports only its own package and the
packages listed before it in LAYERS. Every import counts: relative, under ``if TYPE_CHECKING:``
and inside functions."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "sessiond"

#: The packages of sessiond, lowest first (a top-level module is a package of its own).
LAYERS = (
    "errors",
    "settings",
    "files",
    "events",
    "problems",
    "redis_client",
    "metrics",
    "tokens",
    "denylist",
    "broadcast",
    "audit",
    "credentials",
    "ratelimit",
    "sessions",
    "receivers",
    "verifier",
    "runtime",
    "console",
    "api",
    "asyncapi",
    "cluster",
    "workers",
    "cli",
    "scripts",
    "__main__",
)


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the file and line that imports it."""

    path: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(SRC)}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    """``src/sessiond/api/app.py`` -> ``sessiond.api.app``; a package is its ``__init__``."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str) -> list[Import]:
    """Every sessiond module ``source`` (the text of ``path``) imports, absolute, anywhere in it."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if node.module and base != "sessiond":
                targets = [base]
            else:  # `from . import cache`, `from sessiond import errors`: the names are modules
                targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [Import(path, node.lineno, t) for t in targets if t.split(".")[0] == "sessiond"]
    return sorted(found, key=lambda i: i.line)


def layer(module: str) -> str | None:
    """The package of ``module`` in LAYERS terms; None for the root package and its names."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    name = parts[1]
    is_module = (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file()
    return name if is_module else None


def all_imports() -> list[Import]:
    return [
        found
        for path in sorted(ROOT.rglob("*.py"))
        if path != ROOT / "__init__.py"  # the root package may re-export anything
        for found in imports(path, path.read_text())
    ]


def rank(package: str) -> int:
    """Position in LAYERS; a package missing from it (a test failure of its own) ranks last."""
    return LAYERS.index(package) if package in LAYERS else len(LAYERS)


def upward(found: Import) -> bool:
    own, target = layer(module_name(found.path)), layer(found.target)
    assert own is not None
    return target is not None and rank(target) > rank(own)


def test_every_package_has_a_layer_and_the_order_is_strict() -> None:
    packages = {layer(module_name(path)) or "sessiond" for path in ROOT.rglob("*.py")}
    unplaced = packages - {"sessiond", *LAYERS}
    assert not unplaced, f"packages missing from LAYERS: {sorted(unplaced)}"
    assert len(set(LAYERS)) == len(LAYERS)


def test_no_import_runs_upward() -> None:
    offending = [str(found) for found in all_imports() if upward(found)]
    assert not offending, "imports from a package above the importer's:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("verifier", "api"), ("denylist", "broadcast")],
    ids=["the verifier SDK never imports the HTTP service", "the denylist never imports a bus"],
)
def test_named_edge(lower: str, upper: str) -> None:
    assert LAYERS.index(lower) < LAYERS.index(upper)
    offending = [
        str(found)
        for found in all_imports()
        if layer(module_name(found.path)) == lower and layer(found.target) == upper
    ]
    assert not offending, "\n".join(offending)


def test_relative_type_checking_and_local_imports_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..api import app\n"
        "from . import cache\n"
        "if TYPE_CHECKING:\n"
        "    from sessiond.broadcast.base import RevocationBus\n"
        "def f() -> None:\n"
        "    import sessiond.runtime\n"
        "from sessiond import errors, __version__\n"
    )
    found = imports(ROOT / "verifier" / "engine.py", source)
    assert [(i.line, i.target) for i in found] == [
        (2, "sessiond.api"),
        (3, "sessiond.verifier.cache"),
        (5, "sessiond.broadcast.base"),
        (7, "sessiond.runtime"),
        (8, "sessiond.errors"),
        (8, "sessiond.__version__"),
    ]
    assert [upward(i) for i in found] == [True, False, False, True, False, False]


def test_the_design_docs_package_map_follows_the_layers() -> None:
    design = (SRC.parent / "docs" / "design.md").read_text()
    table = design.split("\n## Package map\n", 1)[1].split("\n## ", 1)[0]
    listed = tuple(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert listed == tuple(name for name in LAYERS if name != "__main__")
