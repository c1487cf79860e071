"""Creating, reading, replacing and patching objects: what a client of the API server sees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed.sim.errors import ApiError
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType

Widget = Callable[..., dict[str, Any]]


def error_of(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_create_fills_server_metadata_and_schema_defaults(registry: Registry, widgets: ResourceType,
                                                           widget: Widget) -> None:
    created = registry.create(widgets, "default", widget("w", spec_extra=1))
    meta = created["metadata"]
    assert meta["name"] == "w"
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == str(registry.resource_version)
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert len(meta["creationTimestamp"]) == len("2024-01-01T00:00:00Z")
    assert created["spec"] == {"color": "red", "size": 1}
    assert "spec_extra" not in created  # unknown fields are pruned
    assert registry.get(widgets, "default", "w") == created


def test_objects_given_and_returned_are_copies(registry: Registry, widgets: ResourceType,
                                               widget: Widget) -> None:
    body = widget("w", metadata={"name": "w", "labels": {"a": "b"}})
    registry.create(widgets, "default", body)["spec"]["color"] = "blue"
    body["metadata"]["labels"]["a"] = "changed"
    body["spec"]["color"] = "blue"
    assert registry.get(widgets, "default", "w")["metadata"]["labels"] == {"a": "b"}
    registry.get(widgets, "default", "w")["spec"]["color"] = "blue"
    registry.list(widgets, "default")["items"][0]["spec"]["color"] = "blue"
    assert registry.get(widgets, "default", "w")["spec"]["color"] == "red"


def test_status_is_dropped_on_create_with_a_status_subresource(
        registry: Registry, widgets: ResourceType, gadgets: ResourceType, widget: Widget) -> None:
    assert "status" not in registry.create(widgets, "default", widget("w", status={"state": "x"}))
    gadget = {"metadata": {"name": "g"}, "spec": {"color": "red"}, "status": {"state": "x"}}
    assert registry.create(gadgets, "", gadget)["status"] == {"state": "x"}


def test_generate_name(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "w-"}
    name = registry.create(widgets, "default", body)["metadata"]["name"]
    assert name.startswith("w-")
    assert len(name) == 7


@pytest.mark.parametrize(("name", "message"), [
    ("Bad_Name", 'Widget.example.com "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a '
                 "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                 "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                 r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("a" * 254, f'Widget.example.com "{"a" * 254}" is invalid: metadata.name: Invalid value: "{"a" * 254}": '
                "must be no more than 253 characters"),
    ("", 'Widget.example.com "" is invalid: metadata.name: Required value: name or generateName is required'),
])
def test_invalid_names_are_refused(registry: Registry, widgets: ResourceType, widget: Widget, name: str,
                                   message: str) -> None:
    error = error_of(lambda: registry.create(widgets, "default", widget(name)))
    assert (error.code, error.reason, error.message) == (422, "Invalid", message)


def test_rbac_names_may_hold_colons(registry: Registry) -> None:
    roles = registry.resolve("rbac.authorization.k8s.io", "v1", "clusterroles")
    rules = [{"apiGroups": ["lcm.mirantis.com"], "resources": ["lcmmachines"], "verbs": ["get"]}]
    created = registry.create(roles, "", {"metadata": {"name": "system:lcm-agent"}, "rules": rules})
    assert (created["metadata"]["name"], created["rules"]) == ("system:lcm-agent", rules)
    assert registry.get(roles, "", "system:lcm-agent") == created


def test_bad_labels_are_refused(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    body = widget("w")
    body["metadata"]["labels"] = {"ok": "fine", "bad key!": "v", "k": "bad value"}
    error = error_of(lambda: registry.create(widgets, "default", body))
    assert error.code == 422
    assert [c.field for c in error.causes] == ["metadata.labels", "metadata.labels"]


def test_schema_violations_are_all_reported_and_nothing_is_stored(
        registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    before = registry.resource_version
    body = widget("w", color="green")
    body["spec"]["size"] = -1
    error = error_of(lambda: registry.create(widgets, "default", body))
    assert error.code == 422
    assert {c.field for c in error.causes} == {"spec.color", "spec.size"}
    assert error.message.startswith(
        'Widget.example.com "w" is invalid: [spec.color: Unsupported value: "green"')
    assert registry.resource_version == before
    assert error_of(lambda: registry.get(widgets, "default", "w")).code == 404


@pytest.mark.parametrize(("body", "namespace", "code", "message"), [
    ({"apiVersion": "example.com/v2"}, "default", 400,
     "the API version in the data (example.com/v2) does not match the expected API version (example.com/v1)"),
    ({"kind": "Gadget"}, "default", 400,
     "the kind in the data (Gadget) does not match the expected kind (Widget)"),
    ({"metadata": {"name": "w", "namespace": "other"}}, "default", 400,
     "the namespace of the provided object does not match the namespace sent on the request"),
    ({}, "missing", 404, 'namespaces "missing" not found'),
])
def test_requests_that_do_not_fit_the_url(registry: Registry, widgets: ResourceType, widget: Widget,
                                          body: dict[str, Any], namespace: str, code: int,
                                          message: str) -> None:
    error = error_of(lambda: registry.create(widgets, namespace, {**widget("w"), **body}))
    assert (error.code, error.message) == (code, message)


def test_a_taken_name_is_a_conflict(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    error = error_of(lambda: registry.create(widgets, "default", widget("w")))
    assert (error.code, error.reason, error.message) == (
        409, "AlreadyExists", 'widgets.example.com "w" already exists')


def test_replace_with_a_stale_version_is_a_conflict(registry: Registry, widgets: ResourceType,
                                                    widget: Widget) -> None:
    first = registry.create(widgets, "default", widget("w"))
    registry.patch(widgets, "default", "w", "merge", {"spec": {"size": 2}})
    first["spec"]["color"] = "blue"
    error = error_of(lambda: registry.replace(widgets, "default", "w", first))
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == ('Operation cannot be fulfilled on widgets.example.com "w": the object has been '
                             "modified; please apply your changes to the latest version and try again")


def test_custom_resources_need_a_version_to_replace_but_built_ins_do_not(
        registry: Registry, widgets: ResourceType, secrets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    error = error_of(lambda: registry.replace(widgets, "default", "w", widget("w", color="blue")))
    assert (error.code, error.message) == (
        422, 'widgets.example.com "w" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be '
             "specified for an update")
    registry.create(secrets, "default", {"metadata": {"name": "s"}, "data": {"a": "YQ=="}})
    replaced = registry.replace(secrets, "default", "s", {"metadata": {"name": "s"}, "data": {"a": "Yg=="}})
    assert replaced["data"] == {"a": "Yg=="}


def test_replace_cannot_rename(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    current = registry.create(widgets, "default", widget("w"))
    current["metadata"]["name"] = "v"
    error = error_of(lambda: registry.replace(widgets, "default", "w", current))
    assert (error.code, error.message) == (
        400, "the name of the object (v) does not match the name on the URL (w)")


def test_writes_that_change_nothing_keep_the_version(registry: Registry, widgets: ResourceType,
                                                     widget: Widget) -> None:
    created = registry.create(widgets, "default", widget("w"))
    rv = registry.resource_version
    assert registry.replace(widgets, "default", "w", created) == created
    assert registry.patch(widgets, "default", "w", "merge", {"spec": {"color": "red"}}) == created
    assert registry.resource_version == rv


def test_generation_counts_spec_changes_only(registry: Registry, widgets: ResourceType,
                                             widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    assert registry.patch(widgets, "default", "w", "merge",
                          {"metadata": {"labels": {"a": "b"}}})["metadata"]["generation"] == 1
    assert registry.patch(widgets, "default", "w", "merge", {"status": {"state": "Ready"}},
                          subresource="status")["metadata"]["generation"] == 1
    spec_changed = registry.patch(widgets, "default", "w", "merge", {"spec": {"size": 5}})
    assert spec_changed["metadata"]["generation"] == 2


def test_without_a_status_subresource_status_is_spec_like(registry: Registry, gadgets: ResourceType) -> None:
    registry.create(gadgets, "", {"metadata": {"name": "g"}, "spec": {"color": "red"}})
    patched = registry.patch(gadgets, "", "g", "merge", {"status": {"state": "x"}})
    assert patched["status"] == {"state": "x"}
    assert patched["metadata"]["generation"] == 2
    assert error_of(lambda: registry.patch(gadgets, "", "g", "merge", {}, subresource="status")).code == 404


def test_the_main_resource_ignores_status_and_status_ignores_the_rest(
        registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    registry.patch(widgets, "default", "w", "merge", {"status": {"state": "one"}}, subresource="status")
    main = registry.patch(widgets, "default", "w", "merge", {"status": {"state": "two"}, "spec": {"size": 3}})
    assert (main["status"], main["spec"]["size"]) == ({"state": "one"}, 3)
    everything = {"status": {"state": "three"}, "spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}}
    status = registry.patch(widgets, "default", "w", "merge", everything, subresource="status")
    assert status["status"] == {"state": "three"}
    assert status["spec"]["size"] == 3
    assert "labels" not in status["metadata"]


def test_status_writes_are_validated(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    error = error_of(lambda: registry.patch(widgets, "default", "w", "merge", {"status": {"count": "many"}},
                                            subresource="status"))
    assert error.code == 422
    assert [c.field for c in error.causes] == ["status.count"]


def test_json_patch_and_its_failed_test(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    patched = registry.patch(widgets, "default", "w", "json", [
        {"op": "test", "path": "/spec/color", "value": "red"},
        {"op": "add", "path": "/spec/tags", "value": {"a": "b"}}])
    assert patched["spec"]["tags"] == {"a": "b"}
    error = error_of(lambda: registry.patch(widgets, "default", "w", "json", [
        {"op": "test", "path": "/spec/color", "value": "blue"}]))
    assert (error.code, error.reason, error.message) == (
        422, "Invalid", "the server rejected our request due to an error in our request")
    assert error_of(lambda: registry.patch(widgets, "default", "w", "json", {"op": "add"})).code == 400


def test_strategic_merge_patch(registry: Registry, widgets: ResourceType, secrets: ResourceType,
                               widget: Widget) -> None:
    registry.create(widgets, "default", widget("w"))
    error = error_of(lambda: registry.patch(widgets, "default", "w", "strategic", {"spec": {"size": 2}}))
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    registry.create(secrets, "default", {"metadata": {"name": "s"}, "data": {"a": "YQ=="}})
    patched = registry.patch(secrets, "default", "s", "strategic", {"data": {"b": "Yg=="}})
    assert patched["data"] == {"a": "YQ==", "b": "Yg=="}


def test_merge_patch_null_removes_a_field(registry: Registry, widgets: ResourceType,
                                          widget: Widget) -> None:
    registry.create(widgets, "default", widget("w", spec={"color": "red", "tags": {"a": "b", "c": "d"}}))
    patched = registry.patch(widgets, "default", "w", "merge", {"spec": {"tags": {"a": None}}})
    assert patched["spec"]["tags"] == {"c": "d"}


def test_dry_run_writes_nothing(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    rv = registry.resource_version
    assert registry.create(widgets, "default", widget("w"), dry_run=True)["metadata"]["name"] == "w"
    assert error_of(lambda: registry.get(widgets, "default", "w")).code == 404
    registry.create(widgets, "default", widget("w"))
    rv = registry.resource_version
    patched = registry.patch(widgets, "default", "w", "merge", {"spec": {"size": 4}}, dry_run=True)
    assert patched["spec"]["size"] == 4
    registry.delete(widgets, "default", "w", dry_run=True)
    assert registry.get(widgets, "default", "w")["spec"]["size"] == 1
    assert registry.resource_version == rv


def test_unknown_resources_and_subresources(registry: Registry, widgets: ResourceType) -> None:
    assert error_of(lambda: registry.resolve("example.com", "v1", "nothings")).code == 404
    assert error_of(lambda: registry.resolve("example.com", "v2", "widgets")).code == 404
    scale = error_of(lambda: registry.patch(widgets, "default", "w", "merge", {}, subresource="scale"))
    assert scale.code == 404
