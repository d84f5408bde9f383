"""The README's DPoP walk-through, run as printed against a real ``sessiond serve``."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import SESSIOND, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL = re.compile(r"one-time service credential \(all scopes; shown once\): (sdc_\S+)")


def dpop_walkthrough() -> str:
    """The shell block the README marks as the DPoP walk-through."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- dpop walk-through:.*?-->\n```sh\n(.*?)```", readme, re.DOTALL)
    assert match is not None, "README.md lost its DPoP walk-through block"
    return match.group(1)


@pytest.fixture
def embedded() -> Iterator[ServerProcess]:
    with ServerProcess(SESSIOND) as server:
        yield server


def test_the_readme_dpop_walkthrough_works_as_printed(
    embedded: ServerProcess, tmp_path: Path
) -> None:
    credential = CREDENTIAL.search(embedded.output())
    assert credential is not None, embedded.output()
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", dpop_walkthrough()],
        env={
            "PATH": os.environ["PATH"],
            "SESSIOND": embedded.url,
            "CRED": credential.group(1),
            "TMPDIR": str(tmp_path),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == '{"token_type":"DPoP"}', run.stdout
    assert re.fullmatch(r'\{"sub":"alice","cnf":\{"jkt":"[A-Za-z0-9_-]{43}"\}\}', lines[1])
    assert lines[2] == "as Bearer: 401"
