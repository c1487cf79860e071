"""The store: persistence across restarts, one resourceVersion counter, bounded history, watch fan-out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testbed.sim.errors import ApiError
from testbed.sim.store import Store, Watcher, WatchEvent


def obj(name: str, namespace: str = "ns", **fields: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **fields}


async def drain(watcher: Watcher, count: int) -> list[WatchEvent]:
    return [await anext(watcher) for _ in range(count)]


def test_objects_and_counter_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = Store(path)
    store.put("configmaps", obj("a", data={"k": "1"}))
    store.put("configmaps", obj("b"))
    store.put("configmaps", obj("a", data={"k": "2"}))
    store.delete("configmaps", "ns", "b")
    store.close()

    reopened = Store(path)
    assert reopened.resource_version == 4
    assert set(reopened.objects("configmaps")) == {("ns", "a")}
    kept = reopened.get("configmaps", "ns", "a")
    assert kept is not None
    assert kept.obj["data"] == {"k": "2"}
    assert kept.obj["metadata"]["resourceVersion"] == "3"
    assert reopened.put("configmaps", obj("c")).rv == 5
    reopened.close()


def test_watch_history_does_not_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = Store(path)
    store.put("configmaps", obj("a"))
    store.put("configmaps", obj("b"))
    store.close()
    reopened = Store(path)
    with pytest.raises(ApiError) as caught:
        reopened.watch("configmaps", since=1)
    assert (caught.value.code, caught.value.message) == (410, "too old resource version: 1 (2)")
    reopened.watch("configmaps", since=2)  # the current version is fine
    reopened.close()


def test_in_memory_store_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store(None)
    store.put("configmaps", obj("a"))
    assert store.resource_version == 1
    assert list(tmp_path.iterdir()) == []


def test_history_is_bounded_and_older_versions_are_gone() -> None:
    store = Store(None, history_limit=3)
    for name in "abcde":
        store.put("configmaps", obj(name))
    with pytest.raises(ApiError) as caught:
        store.watch("configmaps", since=1)
    assert caught.value.code == 410
    assert caught.value.reason == "Expired"
    assert caught.value.message == "too old resource version: 1 (2)"
    replayed = store.watch("configmaps", since=2)
    assert [e.object["metadata"]["name"] for e in replayed.backlog] == ["c", "d", "e"]


def test_history_of_large_objects_is_bounded_by_size_too() -> None:
    """One object of 100 KB written 50 times: a count of 10,000 events would keep 10 MB of it (twice:
    each change keeps the version it replaced); a 1 MB budget keeps the newest few and expires the rest."""
    store = Store(None, history_bytes=1 << 20)
    for n in range(50):
        store.put("configmaps", obj("big", data={"blob": f"{n:03d}" + "x" * 100_000}))
    events, size = store.history_size
    assert size <= 1 << 20
    assert 0 < events < 50
    with pytest.raises(ApiError) as caught:
        store.watch("configmaps", since=1)
    assert caught.value.code == 410
    replayed = store.watch("configmaps", since=store.resource_version - events)
    kept = [f"{n:03d}" for n in range(50 - events, 50)]
    assert [e.object["data"]["blob"][:3] for e in replayed.backlog] == kept


def test_compaction_expires_every_earlier_version() -> None:
    store = Store(None)
    store.put("configmaps", obj("a"))
    store.put("configmaps", obj("b"))
    store.compact()
    with pytest.raises(ApiError) as watch_error:
        store.watch("configmaps", since=1)
    with pytest.raises(ApiError) as list_error:
        store.snapshot("configmaps", 1)
    assert watch_error.value.code == list_error.value.code == 410
    assert not store.watch("configmaps", since=2).backlog


def test_a_version_from_the_future_is_refused() -> None:
    store = Store(None)
    store.put("configmaps", obj("a"))
    with pytest.raises(ApiError) as caught:
        store.watch("configmaps", since=7)
    assert caught.value.code == 504
    assert caught.value.message == "Too large resource version: 7, current: 1"


def test_snapshot_shows_objects_as_they_were() -> None:
    store = Store(None)
    store.put("configmaps", obj("a", data={"v": "old"}))
    store.put("configmaps", obj("b"))
    store.put("secrets", obj("s"))
    at = store.resource_version
    store.put("configmaps", obj("a", data={"v": "new"}))
    store.delete("configmaps", "ns", "b")
    store.put("configmaps", obj("c"))

    past = store.snapshot("configmaps", at)
    assert sorted(past) == [("ns", "a"), ("ns", "b")]
    assert past[("ns", "a")].obj["data"] == {"v": "old"}
    assert sorted(store.objects("configmaps")) == [("ns", "a"), ("ns", "c")]


async def test_deleted_event_carries_the_deletions_version() -> None:
    store = Store(None)
    store.put("configmaps", obj("a"))
    watcher = store.watch("configmaps", since=1)
    store.delete("configmaps", "ns", "a")
    (event,) = await drain(watcher, 1)
    assert event.type == "DELETED"
    assert event.object["metadata"]["resourceVersion"] == "2"


async def test_one_encoding_is_shared_by_all_watchers() -> None:
    store = Store(None)
    first, second = store.watch("configmaps", since=0), store.watch("configmaps", since=0)
    store.put("configmaps", obj("a"))
    (one,), (two,) = await drain(first, 1), await drain(second, 1)
    assert one.encoded is two.encoded
    assert json.loads(one.encoded) == {"type": "ADDED", "object": one.object}


async def test_a_watcher_that_falls_behind_is_closed_without_gaps() -> None:
    store = Store(None, queue_size=2)
    slow, fast = store.watch("configmaps", since=0), store.watch("configmaps", since=0)
    for name in "abcd":
        store.put("configmaps", obj(name))
        await anext(fast)
    got = [event.object["metadata"]["name"] async for event in slow]
    assert len(got) < 4
    assert got == list("abcd")[: len(got)]  # whatever it got has no gap: it can resume from there
    store.put("configmaps", obj("e"))
    assert (await anext(fast)).object["metadata"]["name"] == "e"


async def test_closing_the_store_ends_open_watches() -> None:
    store = Store(None)
    watcher = store.watch("configmaps")
    store.close()
    assert [event async for event in watcher] == []
