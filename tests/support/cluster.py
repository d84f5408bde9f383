"""What the end-to-end tests share: the cluster's HTTP API, problem types, and watching the
``sessiond cluster`` command and the processes it leaves (or must not leave) behind."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessiond.cluster import LocalCluster
from support.authority import bearer

REVOKED = "urn:sessiond:problem:token-revoked"
STALE = "urn:sessiond:problem:denylist-stale"
SESSIOND_BIN = str(Path(sys.executable).with_name("sessiond"))
ROOT = Path(__file__).resolve().parents[2]
Pid = tuple[int, str]  # (pid, start time): a pid that cannot be mistaken for a reused one


@dataclass
class Session:
    """A signed-in session: its subject, id and access token."""

    sub: str
    sid: str
    access: str
    jti: str = ""


class Api:
    """HTTP to the replicas of a cluster, one keep-alive connection pool per replica."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.urls = cluster.urls
        self.service = bearer(cluster.credential)
        self.http = [httpx.Client(base_url=url, timeout=10.0) for url in self.urls]

    def close(self) -> None:
        for http in self.http:
            http.close()

    def login(self, replica: int, sub: str | None = None) -> Session:
        """A new session created through ``replica`` (0-based)."""
        sub = sub or unique("user")
        response = self.http[replica].post(
            "/v1/sessions", json={"subject": sub}, headers=self.service
        )
        assert response.status_code == 201, response.text
        body = response.json()
        me = self.whoami(replica, body["access_token"])
        assert me.status_code == 200, me.text
        return Session(sub, body["session_id"], body["access_token"], me.json()["jti"])

    def whoami(self, replica: int, access: str) -> httpx.Response:
        return self.http[replica].get("/v1/whoami", headers=bearer(access))

    def readyz(self, replica: int) -> httpx.Response:
        return self.http[replica].get("/readyz")

    def revoke_session(self, replica: int, sid: str) -> httpx.Response:
        return self.http[replica].delete(f"/v1/sessions/{sid}", headers=self.service)

    def revoke_subject(self, replica: int, sub: str) -> httpx.Response:
        return self.http[replica].delete(f"/v1/subjects/{sub}/sessions", headers=self.service)

    def revoke(self, replica: int, **body: Any) -> httpx.Response:
        return self.http[replica].post("/v1/revocations", json=body, headers=self.service)

    def eventually(
        self, replica: int, access: str, status: int, within: float, every: float = 0.001
    ) -> Tries:
        """Whoami every ``every`` seconds until it answers ``status`` or ``within`` pass."""
        started = time.monotonic()
        response = self.whoami(replica, access)
        tries = Tries(response.status_code, time.monotonic() - started, response)
        while response.status_code != status and time.monotonic() - started < within:
            time.sleep(every)
            response = self.whoami(replica, access)
        tries.last, tries.elapsed = response, time.monotonic() - started
        return tries


@dataclass
class Tries:
    """The first answer to a repeated request (its status, when it came) and the last one."""

    first: int
    first_after: float
    last: httpx.Response
    elapsed: float = 0.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def problem_type(response: httpx.Response) -> str:
    return str(response.json().get("type", "")) if response.content else ""


def read_until(proc: subprocess.Popen[str], last: str, within: float) -> list[str]:
    """Lines of ``proc``'s stdout up to the one equal to ``last``."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + within
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"{last!r} not printed within {within} s; printed: {seen}")
        if line == last:
            return seen
        if line is None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"exited with {proc.wait()} before {last!r}: {seen} {err}")
        seen.append(line)


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(name, parent pid, start time) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return name, int(fields[1]), fields[19]


def descendants(root: int) -> list[tuple[Pid, str]]:
    """Every live descendant of ``root``: ((pid, start time), name)."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
            parents.setdefault(stat[1], []).append(int(entry.name))
    found: list[tuple[Pid, str]] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(((child, stats[child][2]), stats[child][0]))
            todo.append(child)
    return found


def alive(pid: Pid) -> bool:
    """True if the process (pid, start time) still runs (not a reused pid)."""
    stat = _stat(pid[0])
    return stat is not None and stat[2] == pid[1]


def mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob and _stat(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


@dataclass
class ClusterCommand:
    """A running ``sessiond cluster``: what it printed up to its banner, and its processes."""

    printed: str
    children: list[tuple[Pid, str]]


@contextlib.contextmanager
def cluster_command(*args: str, cwd: Path | None = None) -> Iterator[ClusterCommand]:
    """Run ``sessiond cluster ARGS`` (without this environment's ``SESSIOND_*``) until it is
    ready; at the end Ctrl-C it, which must exit 0 and leave none of its processes behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    cli = subprocess.Popen(
        [SESSIOND_BIN, "cluster", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        printed = "\n".join(read_until(cli, "Ctrl-C stops everything.", within=60.0))
        running = ClusterCommand(printed, descendants(cli.pid))
        yield running
        cli.send_signal(signal.SIGINT)
        assert cli.wait(30) == 0, cli.stderr.read() if cli.stderr else ""
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    left = [(pid, name) for pid, name in running.children if alive(pid)]
    assert not left, f"left behind: {left}"
