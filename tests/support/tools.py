"""The programs the suite may run: the venv's own, and those ``./dev test`` installs.

The suite runs with a PATH that holds exactly these (``tests/conftest.py``), so a test that
needs a program ``./dev test`` does not install fails on every machine, not only on a fresh
one where nobody installed it by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "dev"
VENV_BIN = Path(sys.executable).parent
_LINE = re.compile(r"^ensure_test_tools\(\) \{ ensure_tools ([^;]+); \}$", re.MULTILINE)


def dev_test_tools() -> tuple[str, ...]:
    """The programs ``./dev test`` installs (its ``ensure_test_tools`` line, tool[:package])."""
    match = _LINE.search(DEV.read_text())
    if match is None:
        raise RuntimeError(f"{DEV} has no 'ensure_test_tools() {{ ensure_tools ...; }}' line")
    return tuple(entry.split(":")[0] for entry in match.group(1).split())


def restrict_path(directory: Path) -> list[str]:
    """Make PATH the venv's programs plus links in ``directory`` to the test tools; return the
    tools this machine lacks."""
    missing = []
    for tool in dev_test_tools():
        found = shutil.which(tool)
        if found is None:
            missing.append(tool)
        else:
            (directory / tool).symlink_to(found)
    os.environ["PATH"] = os.pathsep.join([str(VENV_BIN), str(directory)])
    return missing
