"""Compact JWS pieces built by hand, for tokens the service's own signer would never produce."""

from __future__ import annotations

import base64
import json
from typing import Any


def b64(data: bytes) -> str:
    """base64url without padding, as every JWS segment is encoded."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    """A header or payload segment: ``value`` as compact JSON, or bytes exactly as given."""
    data = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64(data)
