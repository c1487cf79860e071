"""The pure rules of the scheduler's writes: when a merge patch is already reflected (so it is not sent),
and how the token bucket spaces writes."""

from __future__ import annotations

from typing import Any

import pytest

from regional.planning.actions import Action, Create, Delete, Patch
from regional.planning.write_rules import digest, notable, reflects, target
from regional.scheduler.throttling import TokenBucket

OBJ = {"metadata": {"name": "m", "labels": {"a": "1"}}, "spec": {"type": "worker", "items": [{"n": 1}],
                                                               "halt": False, "count": 1}}


@pytest.mark.parametrize(("patch", "expected"), [
    ({}, True),
    ({"spec": {"type": "worker"}}, True),
    ({"spec": {"type": "control"}}, False),
    ({"metadata": {"labels": {"a": "1"}}}, True),
    ({"metadata": {"labels": {"b": "2"}}}, False),
    ({"metadata": {"labels": {"b": None}}}, True),  # removing what is absent changes nothing
    ({"metadata": {"labels": {"a": None}}}, False),
    ({"spec": {"items": [{"n": 1}]}}, True),
    ({"spec": {"items": [{"n": 1}, {"n": 2}]}}, False),  # lists are replaced whole
    ({"spec": {"halt": 0}}, False),  # JSON false is not 0
    ({"spec": {"count": True}}, False),  # nor is 1 true
    ({"spec": {"count": 1.0}}, True),  # a JSON number is a number
    ({"status": {"state": "Ready"}}, False),  # a new object where there was none
    ({"spec": {"type": {"nested": "x"}}}, False),  # an object where there was a string
])
def test_a_merge_patch_is_reflected_only_when_it_would_change_nothing(patch: dict[str, Any],
                                                                      expected: bool) -> None:
    assert reflects(OBJ, patch) is expected


@pytest.mark.parametrize(("qps", "burst", "times", "delays"), [
    (10.0, 2, [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.1, 0.2]),  # a burst, then one per 1/qps
    (10.0, 2, [0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.1]),  # refilled, never beyond burst
    (4.0, 1, [0.0, 0.1, 0.2], [0.0, 0.15, 0.3]),  # waiters queue up in order
    (0.0, 0, [0.0] * 5, [0.0] * 5),  # unlimited
])
def test_the_token_bucket_lets_a_burst_through_then_holds_the_rate(
        qps: float, burst: int, times: list[float], delays: list[float]) -> None:
    bucket = TokenBucket(qps, burst, now=0.0)
    assert [bucket.reserve(t) for t in times] == pytest.approx(delays)


MACHINE_BODY = {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
                "metadata": {"name": "sd-m1", "namespace": "ns"}}


@pytest.mark.parametrize(("action", "where", "worth_an_event"), [
    (Patch("lcmmachines", "ns", "m1", {"spec": {}}, reason="items"), ("lcmmachines", "ns", "m1", ""), True),
    (Patch("lcmmachines", "ns", "m1", {"spec": {}}), ("lcmmachines", "ns", "m1", ""), False),
    (Patch("lcmclusters", "ns", "c", {"status": {}}, subresource="status", reason="progress"),
     ("lcmclusters", "ns", "c", "status"), False),  # the cluster's progress report is no Event
    (Patch("lcmclusters", "ns", "c", {"spec": {}}, reason="paused"), ("lcmclusters", "ns", "c", ""), True),
    (Patch("lcmmachines", "ns", "m1", {"status": {"waiting": None}}, subresource="status", reason="moves"),
     ("lcmmachines", "ns", "m1", "status"), False),  # the Waiting column shows it
    (Patch("lcmmachines", "ns", "m1", {"status": {"lcmOperationStuck": True}}, subresource="status",
           reason="stuck"), ("lcmmachines", "ns", "m1", "status"), True),
    (Create("lcmclusterstates", "ns", MACHINE_BODY, reason="drain"), ("lcmclusterstates", "ns", "sd-m1", ""),
     True),
    (Delete("lcmclusterstates", "ns", "sd-m1", reason="done"), ("lcmclusterstates", "ns", "sd-m1", ""), True),
])
def test_each_action_names_its_object_and_whether_it_is_worth_an_event(
    action: Action, where: tuple[str, str, str, str], worth_an_event: bool,
) -> None:
    assert (target(action), notable(action)) == (where, worth_an_event)


def test_a_patch_is_the_same_whatever_its_key_order() -> None:
    assert digest({"a": 1, "b": {"c": 2, "d": 3}}) == digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert digest({"a": 1}) != digest({"a": True})
