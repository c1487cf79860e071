"""Who is calling (bearer tokens) and whether they may (RBAC), as the API server decides both.

The admin token is generated at start (or given) and maps to the ``system:masters`` group, which RBAC lets do
anything. Any other token must be a bound token the simulator issued (TokenRequest, ``tokens``), unexpired
and naming an account and Secret that still exist, or a ServiceAccount token Secret in the registry.
Authorization reads the RBAC objects stored in the registry; the index is rebuilt only when one of them
changed, so a check is a lookup.
Tokens are compared in constant time and never logged or echoed in errors.
"""

from __future__ import annotations

import hmac
import secrets

from testbed.sim.errors import ApiError, forbidden
from testbed.sim.rbac import Authorizer, RequestAttributes, UserInfo, service_account_user
from testbed.sim.registry import Registry
from testbed.sim.tokens import TokenIssuer

MASTERS = "system:masters"
ADMIN = UserInfo("admin", (MASTERS, "system:authenticated"))
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
"""Who a request without a bearer token is, as on a real API server with anonymous auth (its default): RBAC
then refuses it with 403, where an unknown token is 401."""
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_PLURALS = ("clusterroles", "clusterrolebindings", "roles", "rolebindings")


def new_token() -> str:
    """A random admin token (256 bits), for a simulator started without one."""
    return secrets.token_urlsafe(32)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class Authenticator:
    """Maps an ``Authorization`` header to a user (no token: anonymous), or raises 401 for an unknown token as
    the API server does."""

    def __init__(self, registry: Registry, admin_token: str, issuer: TokenIssuer) -> None:
        self._registry = registry
        self._admin = admin_token.encode()
        self._issuer = issuer

    def authenticate(self, authorization: str | None) -> UserInfo:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return ANONYMOUS
        if hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        reg = self._registry
        bound = self._issuer.verify(token, lambda ns, name: reg.stored("serviceaccounts", ns, name),
                                    lambda ns, name: reg.stored("secrets", ns, name))
        account = (bound.namespace, bound.name) if bound is not None else reg.authenticate_token(token)
        if account is None:
            raise unauthorized()
        return service_account_user(*account)


class AccessControl:
    """RBAC over the registry's Roles and bindings, with the API server's 403 wording."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._revisions: tuple[int, ...] = ()
        self._authorizer: Authorizer | None = None

    def check(self, attrs: RequestAttributes) -> None:
        if MASTERS in attrs.user.groups or self._current().allowed(attrs):
            return
        raise forbidden(attrs.user.name, attrs.verb, attrs.resource, attrs.api_group, attrs.namespace,
                        attrs.name, attrs.subresource)

    def _current(self) -> Authorizer:
        types = [self._registry.resolve(RBAC_GROUP, "v1", plural) for plural in RBAC_PLURALS]
        revisions = tuple(self._registry.revision(rt) for rt in types)
        if self._authorizer is None or revisions != self._revisions:
            objects = [self._registry.list(rt, None)["items"] for rt in types]
            self._authorizer = Authorizer(
                cluster_roles=objects[0], cluster_role_bindings=objects[1], roles=objects[2],
                role_bindings=objects[3])
            self._revisions = revisions
        return self._authorizer
