"""Refresh tokens: format, hashing, and the mask that only the predecessor can open."""

from __future__ import annotations

import pytest

from sessiond.errors import InvalidGrant
from sessiond.tokens.refresh import RefreshToken

SID = "ab" * 16


def test_round_trip_and_entropy() -> None:
    token = RefreshToken.new(SID)
    parsed = RefreshToken.parse(str(token))
    assert parsed.sid == SID
    assert parsed.secret == token.secret
    assert len(token.secret) * 8 >= 256
    assert token.hash != RefreshToken.new(SID).hash
    assert str(token) not in token.hash


def test_only_the_predecessor_unmasks_the_successor() -> None:
    old, new = RefreshToken.new(SID), RefreshToken.new(SID)
    box = old.mask(new)
    assert str(old.unmask(box)) == str(new)
    assert str(RefreshToken.new(SID).unmask(box)) != str(new)
    assert new.secret.hex() != box


@pytest.mark.parametrize("token", ["", "x", SID, SID + ".short", "zz" * 16 + "." + "a" * 43])
def test_malformed_tokens_are_invalid_grants(token: str) -> None:
    with pytest.raises(InvalidGrant):
        RefreshToken.parse(token)
