"""The HTTP layer's own decisions, without a network: request parsing, verbs, fault rules, discovery
documents, certificates and kubeconfigs."""

from __future__ import annotations

import random
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.kubeconfig import write_kubeconfig
from testbed.sim.discovery import discovery_document
from testbed.sim.errors import ApiError
from testbed.sim.faults import Faults
from testbed.sim.resources import BUILTIN_TYPES, ResourceType
from testbed.sim.server import Query, Target, parse_path, verb_of
from testbed.tls import ensure_certificate

MACHINE_TYPE = ResourceType("lcm.mirantis.com", "v1alpha1", "LCMMachine", "lcmmachines", "lcmmachine", True,
                            short_names=("lcmm",), categories=("lcm",), status_subresource=True)


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v1/namespaces", Target("", "v1", None, "namespaces", "", "")),
    ("/api/v1/namespaces/demo", Target("", "v1", None, "namespaces", "demo", "")),
    ("/api/v1/namespaces/demo/status", Target("", "v1", None, "namespaces", "demo", "status")),
    ("/api/v1/namespaces/demo/secrets", Target("", "v1", "demo", "secrets", "", "")),
    ("/api/v1/namespaces/demo/secrets/s1", Target("", "v1", "demo", "secrets", "s1", "")),
    ("/api/v1/secrets", Target("", "v1", None, "secrets", "", "")),
    ("/apis/lcm.mirantis.com/v1alpha1/lcmmachines",
     Target("lcm.mirantis.com", "v1alpha1", None, "lcmmachines", "", "")),
    ("/apis/lcm.mirantis.com/v1alpha1/namespaces/d/lcmmachines/m1/status",
     Target("lcm.mirantis.com", "v1alpha1", "d", "lcmmachines", "m1", "status")),
    ("/api", ("api",)),
    ("/api/v1", ("api", "v1")),
    ("/apis/lcm.mirantis.com/v1alpha1", ("apis", "lcm.mirantis.com", "v1alpha1")),
    ("/version", ("version",)),
])
def test_parse_path(path: str, expected: Target | tuple[str, ...]) -> None:
    assert parse_path(path) == expected


def test_parse_path_refuses_paths_below_a_subresource() -> None:
    with pytest.raises(ApiError) as err:
        parse_path("/api/v1/namespaces/d/secrets/s1/status/extra")
    assert err.value.code == 404


@pytest.mark.parametrize("query", [
    {"timeoutSeconds": "abc"}, {"limit": "x"}, {"watch": "maybe"},
    {"allowWatchBookmarks": "2"}, {"dryRun": "Some"}, {"includeObject": "Everything"},
])
def test_malformed_query_parameters_are_400(query: dict[str, str]) -> None:
    with pytest.raises(ApiError) as err:
        Query.parse(query)
    assert err.value.code == 400


def test_query_parse_reads_every_option() -> None:
    query = Query.parse({"labelSelector": "a=b", "fieldSelector": "metadata.name=x", "limit": "5",
                         "continue": "tok", "resourceVersion": "7", "timeoutSeconds": "30", "watch": "1",
                         "allowWatchBookmarks": "true", "dryRun": "All", "includeObject": "Object"})
    assert query == Query("a=b", "metadata.name=x", 5, "tok", "7", 30, True, True, True, "Object")


@pytest.mark.parametrize(("query", "seconds"), [({}, None), ({"timeoutSeconds": "0"}, None),
                                                  ({"timeoutSeconds": "5"}, 5)])
def test_timeout_seconds_zero_means_no_timeout(query: dict[str, str], seconds: int | None) -> None:
    assert Query.parse(query).timeout_seconds == seconds


@pytest.mark.parametrize(("selector", "name"), [
    ("metadata.name=m1", "m1"),
    ("metadata.name==m1", "m1"),
    ("metadata.namespace=d,metadata.name=m1", "m1"),
    ("metadata.name!=m1", ""),
    ("spec.type=worker", ""),
    ("", ""),
])
def test_a_name_field_selector_names_the_object_for_rbac(selector: str, name: str) -> None:
    assert Query(field_selector=selector).named() == name


@pytest.mark.parametrize(("method", "name", "sub", "watch", "verb"), [
    ("GET", "m1", "", False, "get"),
    ("GET", "", "", False, "list"),
    ("GET", "", "", True, "watch"),
    ("GET", "m1", "", True, "watch"),
    ("POST", "", "", False, "create"),
    ("PUT", "m1", "", False, "update"),
    ("PUT", "m1", "status", False, "update"),
    ("PATCH", "m1", "status", False, "patch"),
    ("DELETE", "m1", "", False, "delete"),
    ("DELETE", "", "", False, "deletecollection"),
])
def test_verb_of(method: str, name: str, sub: str, watch: bool, verb: str) -> None:
    target = Target("", "v1", "d", "secrets", name, sub)
    assert verb_of(method, target, Query(watch=watch)) == verb


@pytest.mark.parametrize(("method", "name", "sub"), [
    ("POST", "m1", ""), ("PUT", "", ""), ("PATCH", "", ""), ("DELETE", "m1", "status"), ("OPTIONS", "m1", ""),
])
def test_verbs_a_path_does_not_allow_are_405(method: str, name: str, sub: str) -> None:
    with pytest.raises(ApiError) as err:
        verb_of(method, Target("", "v1", "d", "secrets", name, sub), Query())
    assert err.value.code == 405


def new_faults() -> Faults:
    return Faults(drop=lambda: 0, compact=lambda: None, rng=random.Random(7))


async def fails(faults: Faults, verb: str = "get", resource: str = "lcmmachines", path: str = "/apis/x",
                user: str = "admin") -> int:
    try:
        await faults.apply(verb=verb, resource=resource, path=path, user=user)
    except ApiError as exc:
        return exc.code
    return 0


async def test_counted_fault_fires_that_many_times() -> None:
    faults = new_faults()
    faults.error(503, count=2)
    assert [await fails(faults) for _ in range(3)] == [503, 503, 0]


@pytest.mark.parametrize(("rule", "request_", "fires"), [
    ({"verb": "patch"}, {"verb": "get"}, False),
    ({"verb": "patch"}, {"verb": "patch"}, True),
    ({"resource": "lcmmachines/status"}, {"resource": "lcmmachines"}, False),
    ({"path": "/namespaces/demo/"}, {"path": "/api/v1/namespaces/demo/secrets"}, True),
    ({"path": "^/api/"}, {"path": "/apis/lcm"}, False),
    ({"user": "system:serviceaccount:d:agent"}, {"user": "admin"}, False),
])
async def test_fault_matching(rule: dict[str, Any], request_: dict[str, str], fires: bool) -> None:
    faults = new_faults()
    faults.error(500, **rule)
    assert await fails(faults, **request_) == (500 if fires else 0)


async def test_probability_fires_some_of_the_time() -> None:
    faults = new_faults()
    faults.error(500, probability=0.5)
    outcomes = [await fails(faults) for _ in range(200)]
    assert 50 < outcomes.count(500) < 150


@pytest.mark.parametrize("command", [
    {"action": "explode"},
    {"action": "error"},
    {"action": "error", "code": 200},
    {"action": "error", "code": 500, "count": 0},
    {"action": "error", "code": 500, "colour": "red"},
    {"action": "latency", "ms": -5},
    {"action": "error", "code": 500, "path": "("},
])
def test_bad_fault_commands_are_400(command: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        new_faults().command(command)
    assert err.value.code == 400


def test_fault_commands_add_list_and_clear_rules() -> None:
    faults = new_faults()
    listed = faults.command({"action": "error", "code": 429, "count": 3, "verb": "list"})
    assert [(r["code"], r["count"], r["retry_after"], r["match"]["verb"]) for r in listed["rules"]] == [
        (429, 3, 1, "list")]
    assert faults.command({"action": "clear"}) == {"rules": []}


def test_discovery_lists_groups_and_resources() -> None:
    types = [*BUILTIN_TYPES, MACHINE_TYPE]
    groups = discovery_document(("apis",), types)["groups"]
    assert "lcm.mirantis.com" in [g["name"] for g in groups]
    resources = discovery_document(("apis", "lcm.mirantis.com", "v1alpha1"), types)["resources"]
    assert [r["name"] for r in resources] == ["lcmmachines", "lcmmachines/status"]
    assert resources[0]["shortNames"] == ["lcmm"]
    assert resources[0]["categories"] == ["lcm"]
    assert resources[1]["verbs"] == ["get", "patch", "update"]
    assert "secrets" in [r["name"] for r in discovery_document(("api", "v1"), types)["resources"]]
    assert discovery_document(("api",), types)["versions"] == ["v1"]


@pytest.mark.parametrize("parts", [("apis", "nope"), ("apis", "lcm.mirantis.com", "v9"), ("openapi", "v2")])
def test_unknown_discovery_paths_are_404(parts: tuple[str, ...]) -> None:
    with pytest.raises(ApiError) as err:
        discovery_document(parts, [*BUILTIN_TYPES, MACHINE_TYPE])
    assert err.value.code == 404


def test_certificate_is_reused_and_renewed_for_new_hosts(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path)
    assert ensure_certificate(tmp_path).ca_pem == first.ca_pem
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert ensure_certificate(tmp_path, ["sim.example"]).ca_pem != first.ca_pem


def test_kubeconfig_is_private_and_complete(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", "tok", ca_pem=b"PEM", user="agent")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["users"] == [{"name": "agent", "user": {"token": "tok"}}]
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:1",
                                             "certificate-authority-data": "UEVN"}
    assert doc["current-context"] == doc["contexts"][0]["name"]
