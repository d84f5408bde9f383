"""``pip install sessiond`` is the verifier SDK: it imports none of the server's packages (the
``server`` extra), and the server's console scripts without them say so in one line."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sessiond.scripts import INSTALL_SERVER, SERVER_PACKAGES

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
# The extra of the Litestar plugin; a Starlette or FastAPI backend does without it.
PLUGIN_PACKAGES = ("litestar",)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("module", "allowed"),
    [("sessiond.verifier", ()), ("sessiond.verifier.litestar", PLUGIN_PACKAGES)],
)
def test_the_sdk_imports_none_of_the_server_packages(module: str, allowed: tuple[str, ...]) -> None:
    result = run_python(
        f"import sys; import {module}; print(' '.join({{n.split('.')[0] for n in sys.modules}}))"
    )
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert module.split(".")[0] in imported
    assert imported & set(SERVER_PACKAGES) == set(allowed)


def requirements(project: dict[str, Any], extra: str | None = None) -> set[str]:
    """The import names of what ``pip install sessiond[extra]`` adds, extras resolved."""
    names: set[str] = set()
    for line in project["optional-dependencies"][extra] if extra else project["dependencies"]:
        match = re.match(r"([A-Za-z0-9._-]+)(?:\[([^]]*)\])?", line)
        assert match is not None, line
        name = match.group(1).lower().replace("-", "_")
        if name == "sessiond":
            for included in match.group(2).split(","):
                names |= requirements(project, included.strip())
        else:
            names.add(name)
    return names


def test_the_server_packages_are_the_server_extra_and_dev_has_them() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not requirements(project) & set(SERVER_PACKAGES)
    assert set(SERVER_PACKAGES) <= requirements(project, "server")
    assert requirements(project, "server") <= requirements(project, "dev")


@pytest.mark.parametrize(
    ("script", "function"), [("sessiond", "sessiond"), ("sessiond-relay", "sessiond_relay")]
)
def test_a_server_script_without_the_extra_says_so_in_one_line(script: str, function: str) -> None:
    hidden = ", ".join(repr(name) for name in ("granian", "prometheus_client", "redis"))
    result = run_python(
        "import sys\n"
        f"for name in ({hidden}):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        f"from sessiond.scripts import {function}\n"
        f"{function}()\n"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{script}: the sessiond server needs the 'server' extra "
        f"(missing: granian, prometheus_client, redis): {INSTALL_SERVER}"
    ]
