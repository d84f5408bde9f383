"""A session's data, changed in place: JSON merge patch (RFC 7396) under optimistic concurrency.

Every change bumps the session's ``data_version``; its ETag is that version (``"d<version>"``,
strong), and a change names the version it was made against (``If-Match``), so that of two
concurrent changes made against one version exactly one applies and the other is refused
(412). The store applies the change atomically (:meth:`SessionStore.update`: a compare-and-set
in Redis, one synchronous step in memory).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from sessiond.errors import PayloadTooLarge

__all__ = ["ANY_VERSION", "DataVersion", "check_size", "etag", "merge_patch", "parse_if_match"]


class _Any:
    """``If-Match: *``: whatever the version is."""


ANY_VERSION: Final = _Any()
DataVersion = int | _Any

_ETAG = re.compile(r'^"d(0|[1-9][0-9]{0,17})"$')


def etag(version: int) -> str:
    """The ETag of data version ``version``."""
    return f'"d{version}"'


def parse_if_match(header: str) -> list[DataVersion]:
    """The versions an ``If-Match`` header names; weak and foreign tags name none (an
    ``If-Match`` compares strongly, RFC 9110 section 13.1.1)."""
    if header.strip() == "*":
        return [ANY_VERSION]
    versions: list[DataVersion] = []
    for tag in header.split(","):
        match = _ETAG.match(tag.strip())
        if match is not None:
            versions.append(int(match.group(1)))
    return versions


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON merge patch ``patch`` applied (RFC 7396 section 2); neither
    argument is changed."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def check_size(data: dict[str, Any], limit: int) -> None:
    """Raise :class:`PayloadTooLarge` if ``data``, as JSON, exceeds ``limit`` bytes
    (``SESSIOND_MAX_DATA_BYTES``)."""
    if len(msgspec.json.encode(data)) > limit:
        raise PayloadTooLarge(f"session data exceeds {limit} bytes")
