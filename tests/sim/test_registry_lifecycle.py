"""Deletion (finalizers, preconditions, namespaces), CRDs coming and going, ServiceAccount tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.sim.errors import ApiError
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType
from testbed.sim.store import Store

Widget = Callable[..., dict[str, Any]]
CRDS = sorted((Path(__file__).parents[2] / "deploy" / "crds").glob("*.yaml"))
SA_TOKEN = "kubernetes.io/service-account-token"


def error_of(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_finalizers_hold_an_object_until_the_last_is_removed(registry: Registry, widgets: ResourceType,
                                                             widget: Widget) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    registry.create(widgets, "default", body)
    marked = registry.delete(widgets, "default", "w")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert marked["metadata"]["generation"] == 2
    assert registry.delete(widgets, "default", "w") == marked  # deleting again changes nothing

    error = error_of(lambda: registry.patch(widgets, "default", "w", "merge",
                                            {"metadata": {"finalizers": ["example.com/a", "example.com/c"]}}))
    assert error.code == 422
    assert "no new finalizers can be added if the object is being deleted" in error.message

    registry.patch(widgets, "default", "w", "merge", {"metadata": {"finalizers": ["example.com/b"]}})
    assert registry.get(widgets, "default", "w")["metadata"]["finalizers"] == ["example.com/b"]
    registry.patch(widgets, "default", "w", "json", [{"op": "remove", "path": "/metadata/finalizers"}])
    assert error_of(lambda: registry.get(widgets, "default", "w")).code == 404


def test_delete_preconditions(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    created = registry.create(widgets, "default", widget("w"))
    uid, rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    stale = error_of(lambda: registry.delete(widgets, "default", "w", preconditions={"resourceVersion": "1"}))
    assert (stale.code, stale.message) == (
        409, 'Operation cannot be fulfilled on widgets.example.com "w": Precondition failed: '
             f"ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}")
    other = error_of(lambda: registry.delete(widgets, "default", "w", preconditions={"uid": "x"}))
    assert other.code == 409
    deleted = registry.delete(widgets, "default", "w", preconditions={"uid": uid, "resourceVersion": rv})
    assert deleted["metadata"]["uid"] == uid
    assert error_of(lambda: registry.delete(widgets, "default", "w")).code == 404


def test_deleting_a_namespace_deletes_what_it_holds(registry: Registry, widgets: ResourceType,
                                                    namespaces: ResourceType, secrets: ResourceType,
                                                    widget: Widget) -> None:
    registry.create(namespaces, "", {"metadata": {"name": "team"}})
    assert registry.get(namespaces, "", "team")["status"] == {"phase": "Active"}
    registry.create(widgets, "team", widget("plain"))
    held = widget("held")
    held["metadata"]["finalizers"] = ["example.com/a"]
    registry.create(widgets, "team", held)
    registry.create(secrets, "team", {"metadata": {"name": "s"}})

    terminating = registry.delete(namespaces, "", "team")
    assert terminating["status"]["phase"] == "Terminating"
    assert [w["metadata"]["name"] for w in registry.list(widgets, "team")["items"]] == ["held"]
    assert registry.list(secrets, "team")["items"] == []
    refused = error_of(lambda: registry.create(widgets, "team", widget("late")))
    assert (refused.code, refused.message) == (
        403, 'widgets.example.com "late" is forbidden: unable to create new content in namespace team '
             "because it is being terminated")

    registry.patch(widgets, "team", "held", "merge", {"metadata": {"finalizers": None}})
    assert error_of(lambda: registry.get(namespaces, "", "team")).code == 404


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_initial_namespaces_exist_and_cannot_be_deleted(registry: Registry, namespaces: ResourceType,
                                                        name: str) -> None:
    assert registry.get(namespaces, "", name)["metadata"]["name"] == name
    assert error_of(lambda: registry.delete(namespaces, "", name)).code == 403


def test_a_crd_is_served_once_created_and_gone_once_deleted(registry: Registry, widgets: ResourceType,
                                                            widget: Widget) -> None:
    crds = registry.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crd = registry.get(crds, "", "widgets.example.com")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    assert widgets.status_subresource
    assert widgets.namespaced

    registry.create(widgets, "default", widget("w"))
    registry.delete(crds, "", "widgets.example.com")
    assert error_of(lambda: registry.resolve("example.com", "v1", "widgets")).code == 404
    assert widgets.key not in {rt.key for rt in registry.resource_types()}
    registry.create(crds, "", crd | {"metadata": {"name": "widgets.example.com"}, "status": {}})
    assert registry.list(registry.resolve("example.com", "v1", "widgets"), None)["items"] == []


def test_an_invalid_crd_is_refused(registry: Registry, widget_crd: dict[str, Any]) -> None:
    crds = registry.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    widget_crd["metadata"]["name"] = "things.example.com"
    error = error_of(lambda: registry.create(crds, "", widget_crd))
    assert error.code == 422
    assert [c.field for c in error.causes] == ["metadata.name"]


def test_crd_files_are_applied_at_start_and_kept_up_to_date(tmp_path: Path,
                                                            widget_crd: dict[str, Any]) -> None:
    manifest = tmp_path / "widgets.yaml"
    manifest.write_text(yaml.safe_dump(widget_crd))
    store = Store(tmp_path / "state.sqlite")
    first = Registry(store, crd_paths=[manifest])
    widgets = first.resolve("example.com", "v1", "widgets")
    rv = first.resource_version
    first.close()

    again = Registry(Store(tmp_path / "state.sqlite"), crd_paths=[manifest])
    assert again.resource_version == rv  # an unchanged manifest is not rewritten
    again.close()

    schema = widget_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["required"] = ["tags"]
    manifest.write_text(yaml.safe_dump(widget_crd))
    updated = Registry(Store(tmp_path / "state.sqlite"), crd_paths=[manifest])
    assert updated.resource_version == rv + 1
    body = {"metadata": {"name": "w"}, "spec": {"color": "red"}}
    error = error_of(lambda: updated.create(widgets, "default", body))
    assert [c.field for c in error.causes] == ["spec.tags"]
    updated.close()


def test_the_projects_crds_serve_lcmmachines() -> None:
    assert len(CRDS) >= 4
    registry = Registry(Store(None), crd_paths=CRDS)
    machines = registry.resolve("lcm.mirantis.com", "v1alpha1", "lcmmachines")
    assert machines.status_subresource
    created = registry.create(machines, "default", {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "m0"},
        "spec": {"clusterName": "demo", "type": "worker"}})
    patched = registry.patch(machines, "default", "m0", "merge",
                             {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
                             subresource="status")
    assert patched["status"]["addresses"][0]["address"] == "10.0.0.1"
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]
    error = error_of(lambda: registry.patch(machines, "default", "m0", "merge", {"spec": {"type": "boss"}}))
    assert error.code == 422
    assert [c.field for c in error.causes] == ["spec.type"]


def token_secret(account: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{account}-token",
                         "annotations": {"kubernetes.io/service-account.name": account}},
            "type": SA_TOKEN}


def test_service_account_tokens_are_filled_and_authenticate(registry: Registry,
                                                            secrets: ResourceType) -> None:
    accounts = registry.resolve("", "v1", "serviceaccounts")
    registry.create(accounts, "default", {"metadata": {"name": "agent"}})
    secret = registry.create(secrets, "default", token_secret("agent"))
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 43
    assert base64.b64decode(secret["data"]["namespace"]) == b"default"
    assert registry.authenticate_token(token) == ("default", "agent")
    assert registry.authenticate_token(token + "x") is None

    registry.delete(accounts, "default", "agent")
    assert registry.authenticate_token(token) is None
    registry.create(accounts, "default", {"metadata": {"name": "agent"}})
    registry.delete(secrets, "default", "agent-token")
    assert registry.authenticate_token(token) is None


def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    first = Registry(Store(tmp_path / "state.sqlite"))
    secrets = first.resolve("", "v1", "secrets")
    first.create(first.resolve("", "v1", "serviceaccounts"), "kube-system", {"metadata": {"name": "sched"}})
    secret = first.create(secrets, "kube-system", token_secret("sched"))
    token = base64.b64decode(secret["data"]["token"]).decode()
    first.close()
    again = Registry(Store(tmp_path / "state.sqlite"))
    assert again.authenticate_token(token) == ("kube-system", "sched")
    again.close()


def test_a_token_secret_must_name_its_account(registry: Registry, secrets: ResourceType) -> None:
    body = token_secret("agent")
    body["metadata"]["annotations"] = {}
    error = error_of(lambda: registry.create(secrets, "default", body))
    assert [c.field for c in error.causes] == ["metadata.annotations[kubernetes.io/service-account.name]"]


def test_string_data_is_stored_as_data(registry: Registry, secrets: ResourceType) -> None:
    created = registry.create(secrets, "default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert created["data"] == {"k": "dg=="}
    assert created["type"] == "Opaque"
    assert "stringData" not in created
