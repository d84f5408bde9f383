"""The markers of the fast subset: ``redis`` and ``nats`` on a test that uses that real server,
``slow`` on one that runs processes of its own, so that ``-m "not slow and not redis and not
nats"`` runs exactly the tests that need none of them (``tests/conftest.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FAST = "not slow and not redis and not nats"
ROOT = Path(__file__).resolve().parents[2]

#: Runs a collection in a child pytest and writes, for each test, whether ``-m`` selected it
#: and which of the three markers it carries.
COLLECT = """
import json, sys
import pytest

class Record:
    def __init__(self):
        self.items = {}

    def pytest_deselected(self, items):
        self.record(items, False)

    def pytest_collection_finish(self, session):
        self.record(session.items, True)

    def record(self, items, selected):
        for item in items:
            names = {m.name for m in item.iter_markers()} & {"slow", "redis", "nats"}
            self.items[item.nodeid] = [selected, sorted(names)]

record = Record()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[2:]], [record])
with open(sys.argv[1], "w") as out:
    json.dump(record.items, out)
sys.exit(code)
"""

#: A test of each kind: (selected by FAST, its markers).
EXPECTED = {
    "tests/unit/test_denylist.py::test_each_kind_denies_only_what_it_matches": (True, []),
    "tests/unit/test_session_stores.py::test_create_get_round_trip[memory]": (True, []),
    "tests/unit/test_session_stores.py::test_create_get_round_trip[redis]": (False, ["redis"]),
    "tests/security/test_jwt_corpus.py::test_hostile_token_is_rejected[memory-alg-none]": (
        True,
        [],
    ),
    "tests/security/test_jwt_corpus.py::test_hostile_token_is_rejected[redis+nats-alg-none]": (
        False,
        ["nats", "redis"],
    ),
    "tests/integration/test_jetstream_bus.py::"
    "test_publish_returns_once_every_following_replica_has_applied_the_event": (False, ["nats"]),
    "tests/e2e/test_serve.py::test_the_readme_walkthrough_works_as_printed": (False, ["slow"]),
}


def test_the_fast_subset_leaves_out_exactly_the_marked_tests(tmp_path: Path) -> None:
    report = tmp_path / "items.json"
    files = sorted({nodeid.split("::")[0] for nodeid in EXPECTED})
    run = subprocess.run(
        [sys.executable, "-c", COLLECT, str(report), "-m", FAST, *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    items = {nodeid: tuple(found) for nodeid, found in json.loads(report.read_text()).items()}
    assert {nodeid: items.get(nodeid) for nodeid in EXPECTED} == EXPECTED
    assert all(selected == (not markers) for selected, markers in items.values())
