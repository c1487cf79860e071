"""The one sha256 spelling the agent accepts, wherever a digest is given to it."""

from __future__ import annotations

import hashlib

import pytest

from agent.kits.digests import is_sha256

HEX = hashlib.sha256(b"lcm").hexdigest()


@pytest.mark.parametrize(("value", "accepted"), [
    (HEX, True),
    (HEX.upper(), False),  # hexdigest() is lower case: capitals would only fail later, as a mismatch
    (HEX[:-1], False),
    (HEX + "0", False),
    (HEX[:-1] + "g", False),
    (f" {HEX}", False),
    (f"{HEX}\n", False),
    ("", False),
])
def test_only_a_lower_case_hexdigest_is_a_sha256(value: str, accepted: bool) -> None:
    assert is_sha256(value) is accepted
