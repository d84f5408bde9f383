"""The README's configuration tables and the settings the code knows never drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from sessiond.settings import Settings, env_name
from sessiond.verifier.settings import VerifierSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next section of that level."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


@pytest.mark.parametrize(
    ("title", "settings"),
    [("Configuration", Settings), ("Verifying tokens in your backend", VerifierSettings)],
)
def test_every_setting_is_documented_and_every_documented_variable_exists(
    title: str, settings: type[msgspec.Struct]
) -> None:
    documented = set(re.findall(r"^\| `(SESSIOND_[A-Z_]+)` \|", section(title), re.MULTILINE))
    known = {env_name(field) for field in settings.__struct_fields__}
    assert documented == known
