"""The README's configuration table and the settings the code knows never drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from sessiond.settings import Settings, env_name

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    documented = set(re.findall(r"^\| `(SESSIOND_[A-Z_]+)` \|", README, re.MULTILINE))
    known = {env_name(field) for field in Settings.__struct_fields__}
    assert documented == known
