"""Watches as a client sees them: start points, replay, 410, bookmarks, selectors, slow clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from testbed.sim.errors import ApiError
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType
from testbed.sim.store import WatchEvent

Widget = Callable[..., dict[str, Any]]


async def take(events: AsyncIterator[WatchEvent], count: int) -> list[tuple[str, str]]:
    """(type, name) of the next ``count`` events; fails rather than hangs if they do not come."""
    got = []
    for _ in range(count):
        event = await asyncio.wait_for(anext(events), 2)
        got.append((event.type, event.object["metadata"].get("name", "")))
    return got


async def ended(events: AsyncIterator[WatchEvent]) -> bool:
    try:
        await asyncio.wait_for(anext(events), 2)
    except StopAsyncIteration:
        return True
    return False


@pytest.mark.parametrize("start", ["", "0"])
async def test_watch_from_now_lists_current_objects_first(registry: Registry, widgets: ResourceType,
                                                          widget: Widget, start: str) -> None:
    registry.create(widgets, "default", widget("b"))
    registry.create(widgets, "default", widget("a"))
    events = registry.watch(widgets, "default", resource_version=start)
    assert await take(events, 2) == [("ADDED", "a"), ("ADDED", "b")]
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 2}})
    assert await take(events, 1) == [("MODIFIED", "a")]


async def test_watch_from_a_version_replays_what_came_after(registry: Registry, widgets: ResourceType,
                                                            widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    since = registry.resource_version
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 2}})
    registry.create(widgets, "default", widget("b"))
    registry.delete(widgets, "default", "a")
    events = registry.watch(widgets, None, resource_version=str(since))
    assert await take(events, 3) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    registry.create(widgets, "default", widget("c"))
    assert await take(events, 1) == [("ADDED", "c")]


async def test_writes_that_change_nothing_send_no_event(registry: Registry, widgets: ResourceType,
                                                        widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    events = registry.watch(widgets, "default", resource_version=str(registry.resource_version))
    registry.patch(widgets, "default", "a", "merge", {"spec": {"color": "red"}})
    registry.patch(widgets, "default", "a", "merge", {"spec": {"color": "blue"}})
    event = await asyncio.wait_for(anext(events), 2)
    assert event.object["spec"]["color"] == "blue"


async def test_a_version_older_than_the_history_is_gone(registry: Registry, widgets: ResourceType,
                                                        widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    since = registry.resource_version
    for size in range(2, 120):  # the fixture keeps 100 events
        registry.patch(widgets, "default", "a", "merge", {"spec": {"size": size}})
    with pytest.raises(ApiError) as caught:
        await anext(registry.watch(widgets, None, resource_version=str(since)))
    assert (caught.value.code, caught.value.reason) == (410, "Expired")
    assert caught.value.message.startswith(f"too old resource version: {since} (")


async def test_compaction_makes_every_earlier_version_gone(registry: Registry, widgets: ResourceType,
                                                           widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    since = registry.resource_version
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 2}})
    registry.compact()
    with pytest.raises(ApiError) as caught:
        await anext(registry.watch(widgets, None, resource_version=str(since)))
    assert caught.value.code == 410
    current = registry.watch(widgets, None, resource_version=str(registry.resource_version))
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 3}})
    assert await take(current, 1) == [("MODIFIED", "a")]


async def test_an_idle_watch_gets_bookmarks_at_the_current_version(
        registry: Registry, widgets: ResourceType, secrets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    events = registry.watch(widgets, "default", resource_version=str(registry.resource_version),
                            bookmark_interval=0.05)
    registry.create(secrets, "default", {"metadata": {"name": "elsewhere"}})
    event = await asyncio.wait_for(anext(events), 2)
    assert event.type == "BOOKMARK"
    assert json.loads(event.encoded) == {"type": "BOOKMARK", "object": {
        "kind": "Widget", "apiVersion": "example.com/v1",
        "metadata": {"resourceVersion": str(registry.resource_version)}}}
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 2}})
    assert await take(events, 1) == [("MODIFIED", "a")]


async def test_objects_entering_and_leaving_a_selector(registry: Registry, widgets: ResourceType,
                                                       widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    events = registry.watch(widgets, None, label_selector="tier=gold",
                            resource_version=str(registry.resource_version))
    registry.patch(widgets, "default", "a", "merge", {"metadata": {"labels": {"tier": "gold"}}})
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 2}})
    registry.patch(widgets, "default", "a", "merge", {"metadata": {"labels": {"tier": "tin"}}})
    left_at = registry.resource_version
    assert await take(events, 3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 3}})
    registry.create(widgets, "default", widget("b", metadata={"name": "b", "labels": {"tier": "gold"}}))
    assert await take(events, 1) == [("ADDED", "b")]

    replay = registry.watch(widgets, None, label_selector="tier=gold", resource_version=str(left_at - 1))
    left = await asyncio.wait_for(anext(replay), 2)
    assert left.type == "DELETED"
    assert left.object["metadata"]["labels"] == {"tier": "gold"}  # its last matching content...
    assert left.object["metadata"]["resourceVersion"] == str(left_at)  # ...at the version it left


async def test_watching_one_object_by_name_and_one_namespace(
        registry: Registry, widgets: ResourceType, namespaces: ResourceType, widget: Widget) -> None:
    registry.create(namespaces, "", {"metadata": {"name": "other"}})
    for namespace in ("default", "other"):
        for name in ("a", "b"):
            registry.create(widgets, namespace, widget(name))
    one = registry.watch(widgets, "other", field_selector="metadata.name=b")
    in_other = registry.watch(widgets, "other")
    assert await take(one, 1) == [("ADDED", "b")]
    assert await take(in_other, 2) == [("ADDED", "a"), ("ADDED", "b")]
    for namespace, name in [("default", "b"), ("other", "a"), ("other", "b")]:
        registry.patch(widgets, namespace, name, "merge", {"spec": {"size": 5}})
    assert await take(one, 1) == [("MODIFIED", "b")]
    assert await take(in_other, 2) == [("MODIFIED", "a"), ("MODIFIED", "b")]


async def test_a_slow_watcher_is_closed(registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    slow = registry.watch(widgets, None, resource_version=str(registry.resource_version))
    await asyncio.sleep(0)
    first = asyncio.ensure_future(anext(slow))
    registry.patch(widgets, "default", "a", "merge", {"spec": {"size": 1000}})
    await first
    for size in range(2, 60):  # the fixture's queue holds 50
        registry.patch(widgets, "default", "a", "merge", {"spec": {"size": size}})
    sizes = [event.object["spec"]["size"] async for event in slow]
    assert sizes == list(range(2, 2 + len(sizes)))
    assert len(sizes) < 58


async def test_deletion_events_of_finalized_objects(registry: Registry, widgets: ResourceType,
                                                    widget: Widget) -> None:
    body = widget("a")
    body["metadata"]["finalizers"] = ["example.com/x"]
    registry.create(widgets, "default", body)
    events = registry.watch(widgets, None, resource_version=str(registry.resource_version))
    registry.delete(widgets, "default", "a")
    registry.patch(widgets, "default", "a", "merge", {"metadata": {"finalizers": []}})
    assert await take(events, 3) == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_a_deleted_namespace_reports_each_object(registry: Registry, widgets: ResourceType,
                                                       namespaces: ResourceType, widget: Widget) -> None:
    registry.create(namespaces, "", {"metadata": {"name": "team"}})
    registry.create(widgets, "team", widget("a"))
    registry.create(widgets, "team", widget("b"))
    events = registry.watch(widgets, None, resource_version=str(registry.resource_version))
    spaces = registry.watch(namespaces, None, field_selector="metadata.name=team",
                            resource_version=str(registry.resource_version))
    registry.delete(namespaces, "", "team")
    assert await take(events, 2) == [("DELETED", "a"), ("DELETED", "b")]
    assert await take(spaces, 2) == [("MODIFIED", "team"), ("DELETED", "team")]


async def test_deleting_a_crd_deletes_its_objects_and_ends_its_watches(
        registry: Registry, widgets: ResourceType, widget: Widget) -> None:
    registry.create(widgets, "default", widget("a"))
    events = registry.watch(widgets, None, resource_version=str(registry.resource_version))
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the watch is running
    crds = registry.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    registry.delete(crds, "", "widgets.example.com")
    assert (await first).type == "DELETED"
    assert await ended(events)
    with pytest.raises(ApiError) as caught:
        await anext(registry.watch(widgets, None))
    assert caught.value.code == 404
