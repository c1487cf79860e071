"""Watch as kubernetes_asyncio's ``Watch().stream`` sees it: resume from a list, 410 Gone, bookmarks,
server-side timeouts, and streams ended by the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from testbed.sim.faults import Faults
from testbed.sim.testing import LCM_GROUP, LCM_VERSION, MACHINES, KubeApi, lcm_machine, merge_patch

pytestmark = pytest.mark.kube


async def setup(kube_api: KubeApi) -> tuple[client.CustomObjectsApi, str]:
    return client.CustomObjectsApi(await kube_api.client()), kube_api.namespace


async def create(objs: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    created: dict[str, Any] = await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                                                         lcm_machine(name, ns))
    return created


async def collect(objs: client.CustomObjectsApi, ns: str, count: int, **kw: Any) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch on the namespace's machines (raw objects)."""
    events: list[dict[str, Any]] = []
    async with watch.Watch().stream(objs.list_namespaced_custom_object, LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                    **kw) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["raw_object"].get("metadata", {}).get("name", "")) for e in events]


async def test_watch_from_a_lists_version_gets_every_later_change(kube_api: KubeApi) -> None:
    objs, ns = await setup(kube_api)
    await create(objs, ns, "old")
    rv = (await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES))["metadata"][
        "resourceVersion"]
    await create(objs, ns, "m1")
    await merge_patch(objs, ns, "m1", {"spec": {"release": "r2"}})
    watching = asyncio.create_task(collect(objs, ns, 4, resource_version=rv, timeout_seconds=10))
    await asyncio.sleep(0.2)
    await create(objs, ns, "m2")
    await objs.delete_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    events = await asyncio.wait_for(watching, 10)
    assert summary(events) == [("ADDED", "m1"), ("MODIFIED", "m1"), ("ADDED", "m2"), ("DELETED", "m1")]
    assert events[1]["raw_object"]["spec"]["release"] == "r2"


async def test_watch_without_version_starts_with_the_current_objects(kube_api: KubeApi) -> None:
    objs, ns = await setup(kube_api)
    for name in ("a", "b"):
        await create(objs, ns, name)
    events = await asyncio.wait_for(collect(objs, ns, 2, timeout_seconds=5), 10)
    assert sorted(summary(events)) == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_by_field_selector_sees_only_that_object(kube_api: KubeApi) -> None:
    objs, ns = await setup(kube_api)
    rv = (await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES))["metadata"][
        "resourceVersion"]
    for name in ("other", "mine"):
        await create(objs, ns, name)
    events = await asyncio.wait_for(
        collect(objs, ns, 1, resource_version=rv, field_selector="metadata.name=mine", timeout_seconds=5), 10)
    assert summary(events) == [("ADDED", "mine")]


@pytest.mark.simulator("compacting the history at once; a real etcd compacts every 5 minutes")
async def test_watch_from_a_compacted_version_raises_410(kube_api: KubeApi, faults: Faults) -> None:
    objs, ns = await setup(kube_api)
    created = await create(objs, ns, "m1")
    await merge_patch(objs, ns, "m1", {"spec": {"release": "r2"}})
    faults.compact()
    with pytest.raises(client.ApiException) as err:
        await collect(objs, ns, 1, resource_version=created["metadata"]["resourceVersion"], timeout_seconds=5)
    assert err.value.status == 410


@pytest.mark.simulator("bookmarks within seconds: a real API server sends one about once a minute")
async def test_bookmarks_arrive_when_allowed(kube_api: KubeApi) -> None:
    objs, ns = await setup(kube_api)
    rv = (await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES))["metadata"][
        "resourceVersion"]
    events = await asyncio.wait_for(
        collect(objs, ns, 2, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=10), 5)
    assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
    assert int(events[0]["raw_object"]["metadata"]["resourceVersion"]) >= int(rv)


async def test_timeout_seconds_ends_the_stream(kube_api: KubeApi) -> None:
    objs, ns = await setup(kube_api)
    rv = (await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES))["metadata"][
        "resourceVersion"]
    start = time.monotonic()
    events = await asyncio.wait_for(collect(objs, ns, 1, resource_version=rv, timeout_seconds=1), 10)
    assert events == []
    assert time.monotonic() - start >= 0.9  # ended by the server at its timeout, not at once


@pytest.mark.simulator("dropping every open watch on demand")
async def test_dropped_watches_end_and_resuming_misses_nothing(kube_api: KubeApi, faults: Faults) -> None:
    objs, ns = await setup(kube_api)
    await create(objs, ns, "m1")
    async with watch.Watch().stream(objs.list_namespaced_custom_object, LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                    timeout_seconds=3600) as stream:
        first = await asyncio.wait_for(anext(stream), 5)
        assert faults.drop_watches() == 1
        # Ended (an hour before its own timeout): nothing but the drop can have ended it.
        assert await asyncio.wait_for(_rest(stream), 60) == []
    last = first["raw_object"]["metadata"]["resourceVersion"]
    await create(objs, ns, "m2")
    resumed = await asyncio.wait_for(collect(objs, ns, 1, resource_version=last, timeout_seconds=5), 10)
    assert summary(resumed) == [("ADDED", "m2")]


async def _rest(stream: AsyncIterator[Any]) -> list[Any]:
    """What the stream yields until it ends."""
    return [e async for e in stream]
