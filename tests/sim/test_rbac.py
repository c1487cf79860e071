"""RBAC in the simulator: who may do what, with Kubernetes' rules for roles, bindings and subjects."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.sim.rbac import Authorizer, RequestAttributes, UserInfo, service_account_user

LCM = "lcm.mirantis.com"


def role(name: str, *rules: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {"metadata": metadata, "rules": list(rules)}


def rule(verbs: str, groups: str, resources: str, names: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "verbs": verbs.split(),
        "apiGroups": groups.split(","),
        "resources": resources.split(),
    }
    if names:
        spec["resourceNames"] = names.split()
    return spec


def binding(name: str, kind: str, ref: str, *subjects: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ref},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "name": name}


def sa(name: str, namespace: str = "") -> dict[str, Any]:
    subject = {"kind": "ServiceAccount", "name": name}
    return subject | {"namespace": namespace} if namespace else subject


AUTHORIZER = Authorizer(
    cluster_roles=[
        role("lcm-reader", rule("get list watch", LCM, "lcmmachines lcmclusters")),
        role("machine-status", rule("get patch update", LCM, "lcmmachines/status")),
        role("any-status", rule("get", LCM, "*/status")),
        role("secret-reader", rule("get", "", "secrets")),
        role("everything", rule("*", "*", "*")),
        role("releases", rule("get list", LCM, "clusterreleases")),
    ],
    cluster_role_bindings=[
        binding("readers", "ClusterRole", "lcm-reader", user("alice"), group("lcm-viewers")),
        binding("releases", "ClusterRole", "releases", group("system:serviceaccounts")),
        binding("admins", "ClusterRole", "everything", user("root")),
        binding("sa-no-ns", "ClusterRole", "everything", sa("ghost")),
        binding("dangling", "ClusterRole", "does-not-exist", user("dave")),
    ],
    roles=[
        role(
            "own-machine",
            rule("get watch patch update", LCM, "lcmmachines lcmmachines/status", "m1"),
            rule("list", LCM, "lcmmachines", "m1"),
            namespace="demo",
        ),
        role("join-token", rule("get", "", "secrets", "swarm-join"), namespace="demo"),
        role("creator", rule("create", LCM, "lcmmachines"), namespace="demo"),
    ],
    role_bindings=[
        binding("agent-m1", "Role", "own-machine", sa("agent-m1"), namespace="demo"),
        binding("join", "Role", "join-token", sa("agent-m1", "demo"), namespace="demo"),
        binding("bob-secrets", "ClusterRole", "secret-reader", user("bob"), namespace="demo"),
        binding("carol-status", "ClusterRole", "any-status", user("carol"), namespace="demo"),
        binding("creators", "Role", "creator", group("lcm-operators"), namespace="demo"),
        binding("dangling", "Role", "does-not-exist", user("erin"), namespace="demo"),
        binding("foreign-role", "Role", "join-token", user("frank"), namespace="other"),
    ],
)
AGENT = service_account_user("demo", "agent-m1")
OTHER_AGENT = service_account_user("demo", "agent-m2")


def ask(
    who: UserInfo | str,
    verb: str,
    resource: str,
    name: str = "",
    namespace: str = "demo",
    group_name: str = LCM,
) -> bool:
    person = UserInfo(who, ("system:authenticated",)) if isinstance(who, str) else who
    resource, _, subresource = resource.partition("/")
    return AUTHORIZER.allowed(
        RequestAttributes(person, verb, group_name, resource, subresource, namespace, name)
    )


@pytest.mark.parametrize(
    ("who", "verb", "resource", "name", "namespace", "allowed"),
    [
        # A ClusterRoleBinding grants everywhere, for the listed verbs and resources only.
        ("alice", "list", "lcmmachines", "", "demo", True),
        ("alice", "watch", "lcmclusters", "", "elsewhere", True),
        ("alice", "list", "lcmmachines", "", "", True),
        ("alice", "delete", "lcmmachines", "m1", "demo", False),
        ("alice", "get", "lcmmachines/status", "m1", "demo", False),
        ("alice", "get", "clusterreleases", "r", "", False),
        # Nobody else: deny by default.
        ("mallory", "get", "lcmmachines", "m1", "demo", False),
        ("dave", "get", "lcmmachines", "m1", "demo", False),
        ("erin", "get", "lcmmachines", "m1", "demo", False),
        # A RoleBinding to a ClusterRole grants it in the binding's namespace only.
        ("bob", "get", "secrets", "anything", "demo", True),
        ("bob", "get", "secrets", "anything", "other", False),
        ("bob", "get", "secrets", "anything", "", False),
        ("bob", "list", "secrets", "", "demo", False),
        # "*/status" covers the status subresource of every resource, and nothing else.
        ("carol", "get", "lcmmachines/status", "m9", "demo", True),
        ("carol", "get", "lcmclusters/status", "c", "demo", True),
        ("carol", "get", "lcmmachines", "m9", "demo", False),
        ("carol", "get", "lcmmachines/status", "m9", "other", False),
        # A RoleBinding's Role is looked up in the binding's own namespace.
        ("frank", "get", "secrets", "swarm-join", "other", False),
        # Wildcards.
        ("root", "deletecollection", "lcmmachines", "", "demo", True),
        ("root", "get", "secrets", "x", "", True),
    ],
)
def test_users_get_what_their_bindings_grant(
    who: str, verb: str, resource: str, name: str, namespace: str, allowed: bool
) -> None:
    group_name = "" if resource.startswith("secrets") else LCM
    assert ask(who, verb, resource, name, namespace, group_name) is allowed


@pytest.mark.parametrize(
    ("verb", "resource", "name", "allowed"),
    [
        ("get", "lcmmachines", "m1", True),
        ("watch", "lcmmachines", "m1", True),
        ("patch", "lcmmachines/status", "m1", True),
        ("update", "lcmmachines/status", "m1", True),
        ("get", "lcmmachines", "m2", False),
        ("patch", "lcmmachines/status", "m2", False),
        ("delete", "lcmmachines", "m1", False),
        # resourceNames never match a request without a name, whatever the verb.
        ("list", "lcmmachines", "", False),
        ("watch", "lcmmachines", "", False),
        ("create", "lcmmachines", "", False),
        # Rules bound to the ServiceAccount's groups apply too.
        ("list", "clusterreleases", "", True),
    ],
)
def test_an_agent_reaches_its_own_machine_only(verb: str, resource: str, name: str, allowed: bool) -> None:
    assert ask(AGENT, verb, resource, name) is allowed


def test_an_agent_reads_the_join_secret_by_name_only() -> None:
    assert ask(AGENT, "get", "secrets", "swarm-join", group_name="")
    assert not ask(AGENT, "get", "secrets", "other", group_name="")
    assert not ask(AGENT, "list", "secrets", group_name="")
    assert not ask(AGENT, "get", "secrets", "swarm-join", namespace="other", group_name="")
    assert not ask(OTHER_AGENT, "get", "secrets", "swarm-join", group_name="")


def test_service_account_subjects_need_a_namespace_and_match_only_that_account() -> None:
    assert not ask(service_account_user("demo", "ghost"), "get", "lcmmachines", "m1")
    assert not ask(UserInfo("agent-m1"), "get", "lcmmachines", "m1")
    assert not ask(service_account_user("other", "agent-m1"), "get", "lcmmachines", "m1", namespace="other")


def test_service_account_identity_carries_the_standard_groups() -> None:
    groups = ("system:serviceaccounts", "system:serviceaccounts:demo", "system:authenticated")
    assert (AGENT.name, AGENT.groups) == ("system:serviceaccount:demo:agent-m1", groups)


def test_group_subjects_match_any_member() -> None:
    viewer = UserInfo("zed", ("lcm-viewers",))
    operator = UserInfo("yan", ("lcm-operators",))
    assert ask(viewer, "get", "lcmmachines", "m1")
    assert ask(operator, "create", "lcmmachines", namespace="demo")
    assert not ask(operator, "create", "lcmmachines", namespace="other")


def test_system_masters_may_do_everything() -> None:
    admin = UserInfo("kubernetes-admin", ("system:masters",))
    assert ask(
        admin, "delete", "customresourcedefinitions", "x", namespace="", group_name="apiextensions.k8s.io"
    )


def test_nothing_bound_means_nothing_allowed() -> None:
    empty = Authorizer(cluster_roles=[], cluster_role_bindings=[], roles=[], role_bindings=[])
    assert not empty.allowed(RequestAttributes(AGENT, "get", LCM, "lcmmachines", "", "demo", "m1"))


def test_thousands_of_per_agent_bindings_each_grant_their_own_machine() -> None:
    count = 5000
    rules = [rule("get patch", LCM, "lcmmachines lcmmachines/status", f"m{i}") for i in range(count)]
    roles = [role(f"m{i}", rules[i], namespace="demo") for i in range(count)]
    bindings = [binding(f"m{i}", "Role", f"m{i}", sa(f"agent-m{i}"), namespace="demo") for i in range(count)]
    big = Authorizer(cluster_roles=[], cluster_role_bindings=[], roles=roles, role_bindings=bindings)
    agent = service_account_user("demo", "agent-m4999")
    assert big.allowed(RequestAttributes(agent, "patch", LCM, "lcmmachines", "status", "demo", "m4999"))
    assert not big.allowed(RequestAttributes(agent, "patch", LCM, "lcmmachines", "status", "demo", "m1"))
