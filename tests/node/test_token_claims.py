"""What the agent reads from its own token to plan the renewal: the claims of a bound ServiceAccount token
(as kube-apiserver and the simulator write them), nothing from anything else, and when to renew."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from agent.adapters.credentials import TokenClaims, read_claims
from agent.daemon.renewal import renew_at


def jwt(payload: Any) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return f"{part(b'{}')}.{part(json.dumps(payload).encode())}.{part(b'sig')}"


BOUND = {"iat": 1000, "exp": 2000, "kubernetes.io": {
    "namespace": "ns", "serviceaccount": {"name": "lcm-agent-w-1", "uid": "u"},
    "secret": {"name": "lcm-agent-w-1-credential", "uid": "s"}}}


@pytest.mark.parametrize(("token", "claims"), [
    (jwt(BOUND), TokenClaims(1000.0, 2000.0, "ns", "lcm-agent-w-1", "lcm-agent-w-1-credential")),
    (jwt({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:ns:a"}), TokenClaims()),
    (jwt({"exp": "soon", "kubernetes.io": ["not", "a", "map"]}), TokenClaims()),
    (jwt(["a", "list"]), TokenClaims()),
    ("opaque-random-token", TokenClaims()),
    ("a.b%%.c", TokenClaims()),
])
def test_only_a_bound_tokens_own_claims_are_read(token: str, claims: TokenClaims) -> None:
    assert read_claims(token) == claims


@pytest.mark.parametrize(("claims", "now", "due"), [
    (TokenClaims(issued=1000.0, expires=2000.0), 1100.0, 1800.0),  # after 80% of its life
    (TokenClaims(issued=1000.0, expires=2000.0), 1900.0, 1800.0),  # overdue: at once
    (TokenClaims(expires=2000.0), 1500.0, 1900.0),                 # no iat: 80% of what is left
    (TokenClaims(), 1234.0, 1234.0),                               # no expiry: at once
])
def test_a_token_is_renewed_after_four_fifths_of_its_life(
    claims: TokenClaims, now: float, due: float,
) -> None:
    assert renew_at(claims, now) == pytest.approx(due)
