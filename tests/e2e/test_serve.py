"""The real ``sessiond serve`` process: the README walk-through, config errors, Redis mode."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.servers import SESSIOND, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SESSIOND_BIN = str(Path(sys.executable).with_name("sessiond"))
CREDENTIAL = re.compile(r"one-time service credential \(all scopes; shown once\): (sdc_\S+)")


def walkthrough(marker: str = "walkthrough") -> str:
    """The shell block the README marks with ``<!-- marker...-->``."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker}.*?-->\n```sh\n(.*?)```", readme, re.DOTALL)
    assert match is not None, f"README.md lost its {marker} block"
    return match.group(1)


def run_walkthrough(server: ServerProcess, block: str) -> subprocess.CompletedProcess[str]:
    """Run ``block`` with bash against ``server``, as its README reader would."""
    credential = CREDENTIAL.search(server.output())
    assert credential is not None, server.output()
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={"PATH": os.environ["PATH"], "SESSIOND": server.url, "CRED": credential.group(1)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def embedded() -> Iterator[ServerProcess]:
    with ServerProcess(SESSIOND) as server:
        yield server


def test_the_readme_walkthrough_works_as_printed(embedded: ServerProcess) -> None:
    assert "For ONE process only" in embedded.output()
    run = run_walkthrough(embedded, walkthrough())
    assert run.returncode == 0, run.stderr
    assert '"sub": "alice"' in run.stdout
    assert "logout: 204" in run.stdout
    assert "urn:sessiond:problem:token-revoked" in run.stdout
    assert run.stdout.rstrip().endswith("whoami: 401")


def test_the_readme_step_up_works_as_printed(embedded: ServerProcess) -> None:
    run = run_walkthrough(embedded, walkthrough("step-up walk-through"))
    assert run.returncode == 0, run.stderr
    signed_in, stepped_up, refreshed = run.stdout.splitlines()
    assert json.loads(signed_in) == {"acr": "aal1", "amr": ["pwd"]}
    stepped = json.loads(stepped_up)
    assert (stepped["acr"], stepped["amr"]) == ("aal2", ["pwd", "otp"])
    assert json.loads(refreshed) == {"acr": "aal2"}


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"SESSIOND_PORT": "eighty"}, "sessiond: error: SESSIOND_PORT: Expected `int`, got `str`"),
        (
            {"SESSIOND_REDIS_URL": "redis://127.0.0.1:1/0"},
            "sessiond: error: SESSIOND_KEYSET_FILE and SESSIOND_CREDENTIALS_FILE are required",
        ),
        (
            {"SESSIOND_KEYSET_FILE": "/nonexistent/keyset.json"},
            "sessiond: error: /nonexistent/keyset.json: cannot read keyset file",
        ),
    ],
)
def test_a_bad_configuration_is_one_line_and_exit_2(env: dict[str, str], line: str) -> None:
    run = subprocess.run(
        [SESSIOND_BIN, "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2
    assert run.stderr.startswith(line), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr


def test_sessions_survive_a_restart_of_sessiond_on_redis(redis_url: str, tmp_path: Path) -> None:
    keyset, credentials = tmp_path / "keyset.json", tmp_path / "credentials.json"
    subprocess.run([SESSIOND_BIN, "keys", "new", "--file", str(keyset)], check=True)
    issue = ["credentials", "new", "--file", str(credentials), "--name", "t", "--scopes"]
    secret = subprocess.run(
        [SESSIOND_BIN, *issue, "sessions:create"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_KEYSET_FILE": str(keyset),
        "SESSIOND_CREDENTIALS_FILE": str(credentials),
    }
    with ServerProcess(SESSIOND, env=env) as server:
        assert "one-time" not in server.output()
        created = httpx.post(
            f"{server.url}/v1/sessions",
            json={"subject": "alice"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert created.status_code == 201
        server.stop()
        server.start()
        refreshed = httpx.post(
            f"{server.url}/v1/tokens/refresh",
            json={"refresh_token": created.json()["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        me = httpx.get(
            f"{server.url}/v1/whoami",
            headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
        )
        assert me.json()["sub"] == "alice"
