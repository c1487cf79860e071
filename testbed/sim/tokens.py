"""Bound ServiceAccount tokens (TokenRequest) as kube-apiserver issues and checks them.

``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` answers a ``TokenRequest`` whose status holds a
JWT and its expiry. The claims are the API server's own (``sub``, ``aud``, ``iat``, ``nbf``, ``exp``,
``jti`` and ``kubernetes.io`` with the account's and the bound Secret's name and UID), so a client that reads
its token's claims reads the same thing on both servers. The signature is an HMAC with the simulator's own
key (kube-apiserver signs with RS256; nobody but the issuer checks it). As on the real server a token stays
valid until ``exp`` (plus the JWT library's one-minute leeway) only while its ServiceAccount, and the Secret
it is bound to, still exist with the UIDs it names: deleting either revokes every token issued for it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.sim.errors import ApiError, Cause, bad_request, invalid, not_found

AUDIENCE = "https://kubernetes.default.svc.cluster.local"
"""kube-apiserver's default ``--api-audiences`` (its issuer's URL)."""
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32
LEEWAY = 60
"""Seconds a token is still taken after ``exp`` (go-jose's ``DefaultLeeway``, which kube-apiserver uses)."""
TOKEN_REQUEST = {"group": "authentication.k8s.io", "kind": "TokenRequest"}

Lookup = Callable[[str, str], Mapping[str, Any] | None]
"""(namespace, name) → the stored object, or None."""


@dataclass(frozen=True)
class BoundAccount:
    """Who a valid token speaks for."""

    namespace: str
    name: str


class TokenIssuer:
    """Signs and checks tokens; ``clock`` gives seconds since the epoch (a test may move it)."""

    def __init__(self, key: bytes, clock: Callable[[], float]) -> None:
        self._key = key
        self.clock = clock

    def request(
        self, namespace: str, account: Mapping[str, Any], body: Mapping[str, Any], secrets: Lookup,
    ) -> dict[str, Any]:
        """The answered ``TokenRequest`` for ``account`` (already looked up), checked as the API server
        checks it; raises ``ApiError`` with its status and wording."""
        name = account["metadata"]["name"]
        meta, spec = body.get("metadata") or {}, dict(body.get("spec") or {})
        if meta.get("name") not in (None, "", name):
            raise _invalid(name, "metadata.name", meta["name"],
                           "must match the service account name if specified")
        seconds = spec.get("expirationSeconds") or DEFAULT_SECONDS
        if not isinstance(seconds, int) or seconds < MIN_SECONDS:
            raise _invalid("", "spec.expirationSeconds", seconds,
                           "may not specify a duration less than 10 minutes")
        if seconds > MAX_SECONDS:
            raise _invalid("", "spec.expirationSeconds", seconds,
                           "may not specify a duration larger than 2^32 seconds")
        audiences = list(spec.get("audiences") or [AUDIENCE])
        k8s: dict[str, Any] = {"namespace": namespace, "serviceaccount": _ref(account)}
        ref = spec.get("boundObjectRef")
        if ref:
            k8s["secret"] = _bound_secret(namespace, ref, secrets)
        now = int(self.clock())
        claims = {"aud": audiences, "exp": now + seconds, "iat": now, "iss": AUDIENCE,
                  "jti": str(uuid.uuid4()), "kubernetes.io": k8s, "nbf": now,
                  "sub": f"system:serviceaccount:{namespace}:{name}"}
        expires = dt.datetime.fromtimestamp(now + seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        created = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "uid": account["metadata"].get("uid", ""),
                             "creationTimestamp": created},
                "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds,
                         "boundObjectRef": ref or None},
                "status": {"token": self._sign(claims), "expirationTimestamp": expires}}

    def verify(self, token: str, accounts: Lookup, secrets: Lookup) -> BoundAccount | None:
        """The account a token speaks for; None when it is not one of ours, is expired, or the account or
        bound Secret it names is gone or was recreated (another UID)."""
        claims = self._claims(token)
        if claims is None:
            return None
        now = self.clock()
        if not (claims.get("nbf", 0) - LEEWAY <= now < claims.get("exp", 0) + LEEWAY):
            return None
        k8s = claims.get("kubernetes.io") or {}
        namespace, account_ref = k8s.get("namespace", ""), k8s.get("serviceaccount") or {}
        if not _alive(accounts(namespace, account_ref.get("name", "")), account_ref):
            return None
        secret_ref = k8s.get("secret")
        if secret_ref is not None and not _alive(secrets(namespace, secret_ref.get("name", "")), secret_ref):
            return None
        return BoundAccount(namespace, account_ref["name"])

    def _sign(self, claims: Mapping[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _claims(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64url(parts[2])):
                return None
            claims = json.loads(_unb64url(parts[1]))
        except (ValueError, binascii.Error):
            return None
        return claims if isinstance(claims, dict) else None


def _bound_secret(namespace: str, ref: Mapping[str, Any], secrets: Lookup) -> dict[str, str]:
    """The ``secret`` claim of a token bound to a Secret. The real server also binds to Pods and Nodes,
    which the simulator does not have: those are refused as any other kind is."""
    kind, api_version = ref.get("kind", ""), ref.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    if (group, kind) != ("", "Secret"):
        raise bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    name = ref.get("name", "")
    secret = secrets(namespace, name)
    if secret is None:
        raise not_found("secrets", "", name)
    bound = _ref(secret)
    if ref.get("uid") and ref["uid"] != bound["uid"]:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on Secret "{name}": the UID in the '
                       f'bound object reference ({ref["uid"]}) does not match the UID in record. The object '
                       "might have been deleted and then recreated", kind="Secret", name=name)
    return bound


def _ref(obj: Mapping[str, Any]) -> dict[str, str]:
    return {"name": obj["metadata"]["name"], "uid": obj["metadata"].get("uid", "")}


def _alive(obj: Mapping[str, Any] | None, ref: Mapping[str, Any]) -> bool:
    return obj is not None and obj["metadata"].get("uid") == ref.get("uid") and not obj["metadata"].get(
        "deletionTimestamp")


def _invalid(name: str, path: str, value: Any, detail: str) -> ApiError:
    message = f"{path}: Invalid value: {json.dumps(value)}: {detail}"
    causes = [Cause(path, "FieldValueInvalid", message)]
    return invalid(TOKEN_REQUEST["kind"], TOKEN_REQUEST["group"], name, causes)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
