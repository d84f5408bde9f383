"""Secrets the test suite hands out, and every log record it emits, for the final leak scan.

Fixtures and helpers that create a secret (service credentials, access and refresh tokens,
webhook secrets) :func:`register` it; ``tests/conftest.py`` captures every log record of the
session and, at its end, fails the run if any registered secret appears in a log message or a
formatted exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field


@dataclass
class Registry:
    secrets: dict[str, str] = field(default_factory=dict)  # value -> kind
    texts: list[tuple[str, str]] = field(default_factory=list)  # (logger name, text)
    audit_lines: int = 0

    def register(self, kind: str, value: str | None) -> None:
        if not value:
            return
        self.secrets[value] = kind
        if kind == "refresh token":  # "<sid>.<secret>": the secret part alone is secret too
            self.secrets[value.rpartition(".")[2]] = "refresh-token secret"
        elif kind == "access token":  # a JWT: its signature is what makes it usable
            self.secrets[value.rpartition(".")[2]] = "access-token signature"
        elif kind == "webhook secret":  # "whsec_<base64 key>": the key alone is secret too
            self.secrets[value.removeprefix("whsec_")] = "webhook key"

    def count(self, kind: str) -> int:
        return sum(1 for k in self.secrets.values() if k == kind)

    def leaks(self) -> list[str]:
        """One line per (secret kind, logger) found in a captured text."""
        found: list[str] = []
        for name, text in self.texts:
            for secret, kind in self.secrets.items():
                if secret in text:
                    found.append(f"{kind} in a record of logger {name!r}: {text[:300]!r}")
        return found


REGISTRY = Registry()
_formatter = logging.Formatter()


class CaptureAll(logging.Handler):
    """Keeps the text of every record: message, formatted exception and stack."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: keep the raw parts
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + _formatter.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        REGISTRY.texts.append((record.name, text))
        if record.name == "sessiond.audit":
            REGISTRY.audit_lines += 1


def register(kind: str, value: str | None) -> None:
    REGISTRY.register(kind, value)
