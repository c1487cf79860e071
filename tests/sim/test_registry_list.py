"""Lists: selectors, order, pages that stay consistent while the objects change, expired pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed.sim.errors import ApiError
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType

Widget = Callable[..., dict[str, Any]]


@pytest.fixture
def populated(registry: Registry, widgets: ResourceType, namespaces: ResourceType,
              widget: Widget) -> Registry:
    registry.create(namespaces, "", {"metadata": {"name": "other"}})
    for namespace, name, color in [("default", "b", "red"), ("other", "a", "blue"), ("default", "a", "blue"),
                                   ("default", "c", "red")]:
        body = widget(name, color)
        body["metadata"]["labels"] = {"color": color}
        registry.create(widgets, namespace, body)
    return registry


def names(listing: dict[str, Any]) -> list[str]:
    return [f'{i["metadata"]["namespace"]}/{i["metadata"]["name"]}' for i in listing["items"]]


def test_list_is_a_typed_list_sorted_by_namespace_then_name(populated: Registry,
                                                            widgets: ResourceType) -> None:
    listing = populated.list(widgets, None)
    assert (listing["kind"], listing["apiVersion"]) == ("WidgetList", "example.com/v1")
    assert listing["metadata"] == {"resourceVersion": str(populated.resource_version)}
    assert names(listing) == ["default/a", "default/b", "default/c", "other/a"]
    assert {(i["apiVersion"], i["kind"]) for i in listing["items"]} == {("example.com/v1", "Widget")}


@pytest.mark.parametrize(("namespace", "labels", "fields", "expected"), [
    ("default", "", "", ["default/a", "default/b", "default/c"]),
    (None, "color=red", "", ["default/b", "default/c"]),
    (None, "color in (blue),color!=red", "", ["default/a", "other/a"]),
    (None, "", "metadata.name=a", ["default/a", "other/a"]),
    (None, "", "metadata.namespace!=default", ["other/a"]),
    ("default", "color=blue", "metadata.name=a", ["default/a"]),
    (None, "missing", "", []),
])
def test_selectors(populated: Registry, widgets: ResourceType, namespace: str | None, labels: str,
                   fields: str, expected: list[str]) -> None:
    assert names(populated.list(widgets, namespace, label_selector=labels, field_selector=fields)) == expected


@pytest.mark.parametrize(("labels", "fields"), [("a in (", ""), ("", "spec.color=red"), ("", "type=x")])
def test_bad_selectors_are_bad_requests(populated: Registry, widgets: ResourceType, labels: str,
                                        fields: str) -> None:
    with pytest.raises(ApiError) as caught:
        populated.list(widgets, None, label_selector=labels, field_selector=fields)
    assert caught.value.code == 400


def test_secrets_can_be_selected_by_type(registry: Registry, secrets: ResourceType) -> None:
    registry.create(secrets, "default", {"metadata": {"name": "plain"}})
    registry.create(secrets, "default", {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls"})
    listing = registry.list(secrets, "default", field_selector="type=kubernetes.io/tls")
    assert [i["metadata"]["name"] for i in listing["items"]] == ["tls"]


def test_pages_stay_consistent_while_objects_change(populated: Registry, widgets: ResourceType,
                                                    widget: Widget) -> None:
    first = populated.list(widgets, None, limit=2)
    assert names(first) == ["default/a", "default/b"]
    assert first["metadata"]["remainingItemCount"] == 2
    token = first["metadata"]["continue"]
    populated.delete(widgets, "default", "c")
    populated.create(widgets, "default", widget("bb"))
    populated.patch(widgets, "other", "a", "merge", {"spec": {"size": 7}})

    rest = populated.list(widgets, None, limit=2, continue_token=token)
    assert names(rest) == ["default/c", "other/a"]
    assert rest["items"][1]["spec"]["size"] == 1
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "continue" not in rest["metadata"]


def test_pages_with_a_selector(populated: Registry, widgets: ResourceType) -> None:
    first = populated.list(widgets, None, label_selector="color=blue", limit=1)
    assert names(first) == ["default/a"]
    assert "remainingItemCount" not in first["metadata"]
    rest = populated.list(widgets, None, label_selector="color=blue", limit=1,
                          continue_token=first["metadata"]["continue"])
    assert names(rest) == ["other/a"]
    assert "continue" not in rest["metadata"]


def test_a_page_past_compaction_is_expired(populated: Registry, widgets: ResourceType) -> None:
    token = populated.list(widgets, None, limit=1)["metadata"]["continue"]
    populated.patch(widgets, "default", "b", "merge", {"spec": {"size": 2}})
    populated.compact()
    with pytest.raises(ApiError) as caught:
        populated.list(widgets, None, limit=1, continue_token=token)
    assert (caught.value.code, caught.value.reason) == (410, "Expired")


@pytest.mark.parametrize(("token", "rv"), [("not-a-token", ""), ("", "abc")])
def test_malformed_tokens_and_versions(populated: Registry, widgets: ResourceType, token: str,
                                       rv: str) -> None:
    with pytest.raises(ApiError) as caught:
        populated.list(widgets, None, continue_token=token, resource_version=rv)
    assert caught.value.code == 400


def test_a_list_at_a_future_version_is_refused(populated: Registry, widgets: ResourceType) -> None:
    with pytest.raises(ApiError) as caught:
        populated.list(widgets, None, resource_version=str(populated.resource_version + 5))
    assert caught.value.code == 504
    assert populated.list(widgets, None, resource_version="0")["items"]
