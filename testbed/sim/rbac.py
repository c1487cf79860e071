"""RBAC authorization with the semantics of kube-apiserver's RBAC authorizer (rbac.authorization.k8s.io/v1).

The ``Authorizer`` is a snapshot built from raw Role/ClusterRole/RoleBinding/ClusterRoleBinding objects; the
HTTP layer rebuilds it when one of those changes. Bindings are resolved to their rules once and indexed by
subject (a user name, or a group), per namespace for RoleBindings, so one check looks at the rules granted to
that user and its groups only, however many bindings the cluster holds (one per agent, at fleet scale).

As in Kubernetes: a RoleBinding to a ClusterRole grants its rules in the binding's namespace only; a missing
role grants nothing; resourceNames never match a request without a name (list, watch, create); ``*/status``
matches the status subresource of every resource; ServiceAccount subjects match the user
``system:serviceaccount:NS:NAME`` (a RoleBinding subject without a namespace means the binding's own);
``system:masters`` may do everything (kube-apiserver's privileged-group authorizer). Not modelled:
aggregated ClusterRoles (``aggregationRule`` is ignored; list the rules directly) and non-resource URLs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SUPERUSER_GROUP = "system:masters"


@dataclass(frozen=True)
class UserInfo:
    """The authenticated caller: a user name and its groups (e.g. ``system:authenticated``)."""

    name: str
    groups: tuple[str, ...] = ()


def service_account_user(namespace: str, name: str) -> UserInfo:
    """The identity kube-apiserver gives a ServiceAccount token's bearer."""
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


@dataclass(frozen=True)
class RequestAttributes:
    """What is being asked: a Kubernetes verb on (group, resource[/subresource]) in a namespace (or "")."""

    user: UserInfo
    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class _Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _Rule:
        return cls(frozenset(raw.get("verbs") or ()), frozenset(raw.get("apiGroups") or ()),
                   frozenset(raw.get("resources") or ()), frozenset(raw.get("resourceNames") or ()))

    def allows(self, attrs: RequestAttributes) -> bool:
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        if "*" in self.resources:
            return True
        if not attrs.subresource:
            return attrs.resource in self.resources
        return (f"{attrs.resource}/{attrs.subresource}" in self.resources
                or f"*/{attrs.subresource}" in self.resources)


_Subject = tuple[str, str]  # ("user" | "group", name)


def _subject_keys(subjects: Iterable[Mapping[str, Any]], binding_namespace: str) -> list[_Subject]:
    keys: list[_Subject] = []
    for subject in subjects:
        kind, name = subject.get("kind"), subject.get("name", "")
        if kind == "User":
            keys.append(("user", name))
        elif kind == "Group":
            keys.append(("group", name))
        elif kind == "ServiceAccount":
            namespace = subject.get("namespace") or binding_namespace
            if namespace:
                keys.append(("user", f"system:serviceaccount:{namespace}:{name}"))
    return keys


def _rules_of(role: Mapping[str, Any]) -> tuple[_Rule, ...]:
    return tuple(_Rule.parse(rule) for rule in role.get("rules") or ())


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


class Authorizer:
    """A snapshot of the cluster's RBAC objects, indexed by subject; ``allowed`` answers one request."""

    def __init__(self, *, cluster_roles: Iterable[Mapping[str, Any]],
                 cluster_role_bindings: Iterable[Mapping[str, Any]], roles: Iterable[Mapping[str, Any]],
                 role_bindings: Iterable[Mapping[str, Any]]) -> None:
        cluster_rules = {_name(role): _rules_of(role) for role in cluster_roles}
        namespaced_rules = {(_namespace(role), _name(role)): _rules_of(role) for role in roles}
        self._cluster: dict[_Subject, list[_Rule]] = defaultdict(list)
        self._namespaced: dict[tuple[str, _Subject], list[_Rule]] = defaultdict(list)
        for binding in cluster_role_bindings:
            ref = binding.get("roleRef", {})
            rules = cluster_rules.get(ref.get("name", ""), ()) if ref.get("kind") == "ClusterRole" else ()
            for key in _subject_keys(binding.get("subjects") or (), ""):
                self._cluster[key].extend(rules)
        for binding in role_bindings:
            namespace, ref = _namespace(binding), binding.get("roleRef", {})
            if ref.get("kind") == "ClusterRole":
                rules = cluster_rules.get(ref.get("name", ""), ())
            else:
                rules = namespaced_rules.get((namespace, ref.get("name", "")), ())
            for key in _subject_keys(binding.get("subjects") or (), namespace):
                self._namespaced[(namespace, key)].extend(rules)

    def allowed(self, attrs: RequestAttributes) -> bool:
        """Whether any rule bound to the user or one of its groups allows the request; deny by default."""
        user = attrs.user
        if SUPERUSER_GROUP in user.groups:
            return True
        keys = [("user", user.name), *(("group", group) for group in user.groups)]
        for key in keys:
            if any(rule.allows(attrs) for rule in self._cluster.get(key, ())):
                return True
            if attrs.namespace and any(
                    rule.allows(attrs) for rule in self._namespaced.get((attrs.namespace, key), ())):
                return True
        return False
