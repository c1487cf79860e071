"""The diagnostics bundle's rules: redaction everywhere, then a cap that keeps the end of what it cuts; and
which item a stuck flag is about."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.api.models import LCMMachine
from agent.decisions.evidence import MARKER, bundle, troubled_item
from agent.kits.logs import SecretRegistry

SECRET = "s3cr3t-join-token"
REDACT = SecretRegistry([SECRET]).redact


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_every_string_is_redacted_at_any_depth_keys_too() -> None:
    parts = {"task": {"message": f"token {SECRET}", SECRET: [f"x{SECRET}y", 3, None]}, "n": 1}
    out = bundle(parts, REDACT)
    assert SECRET not in json.dumps(out)
    assert out["task"] == {"message": "token ***", "***": ["x***y", 3, None]}
    assert out["truncated"] is False


@pytest.mark.parametrize("limit", [2048, 4096, 10_000])
def test_above_the_cap_the_longest_text_is_cut_keeping_its_end_and_saying_so(limit: int) -> None:
    journal = "".join(f"line {n} é\n" for n in range(3000))  # multi-byte characters count as bytes
    output = "start " + "o" * 8000 + f" the error {SECRET}"
    out = bundle({"outputTail": output, "journal": journal, "item": "engine"}, REDACT, limit)
    assert _size(out) <= limit
    assert out["truncated"] is True
    assert out["outputTail"].endswith("the error ***")
    assert out["journal"].endswith("line 2999 é\n")
    assert out["item"] == "engine"
    for field in out["truncatedFields"]:
        text = out[field]
        cut = int(text.removeprefix("[truncated ").split(" ", 1)[0])
        original = {"outputTail": output.replace(SECRET, "***"), "journal": journal}[field]
        assert len(text) - len(MARKER.format(cut=cut)) + cut == len(original)  # the count is right


def test_a_bundle_within_its_cap_is_left_whole() -> None:
    parts = {"outputTail": "x" * 1000}
    assert bundle(parts, REDACT, 2000) == {"outputTail": "x" * 1000, "truncated": False}


def test_a_cap_too_small_for_the_structure_is_refused() -> None:
    with pytest.raises(ValueError, match="needs more than 50 bytes"):
        bundle({f"k{n}": n for n in range(40)}, REDACT, 50)


def _machine(statuses: dict[str, Any]) -> LCMMachine:
    items = [{"runner": "bash", "name": n, "version": "1"} for n in ("a", "b", "c")]
    return LCMMachine.from_raw({"metadata": {"name": "m"}, "spec": {"stateItems": items},
                                "status": {"stateItemStatuses": statuses}})


def _slot(code: int, attempt: int, finished: str = "") -> dict[str, Any]:
    slot: dict[str, Any] = {"hash": "h", "exitCode": code, "attempt": attempt}
    if finished:
        slot["finishedAt"] = finished
    return slot


@pytest.mark.parametrize(("statuses", "trouble"), [
    ({}, None),
    ({"a": _slot(0, 1), "b": _slot(0, 2)}, None),
    ({"a": _slot(0, 1), "b": _slot(-1, 3)}, ("b", 3)),  # the one running
    ({"a": _slot(2, 5, "2026-01-01T00:00:05Z"), "b": _slot(1, 1, "2026-01-01T00:00:01Z")}, ("a", 5)),
    ({"a": _slot(2, 5, "2026-01-01T00:00:05Z"), "c": _slot(-1, 2)}, ("c", 2)),
    ({"x": _slot(1, 9)}, None),  # not in the spec any more
])
def test_the_troubled_item_is_the_running_one_else_the_last_failed(
    statuses: dict[str, Any], trouble: tuple[str, int] | None,
) -> None:
    assert troubled_item(_machine(statuses)) == trouble
