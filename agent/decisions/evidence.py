"""A diagnostics bundle from the evidence gathered: every secret redacted, the whole capped in size.

Pure: the parts come in as JSON values (``agent.adapters.evidence`` reads them), a bundle goes out. Two
rules, in this order:

1. Redaction first, of every string at any depth (keys too): the agent's secret registry knows the API
   token, the MQTT password and the join tokens learned at run time; a part already redacted by its
   producer (the runner's log) is redacted again, since a secret can come from elsewhere (a journal line
   from before the token was registered, a task message).
2. Then the cap (bytes of the bundle's JSON): the longest text is cut, keeping its end (where the error
   is), until the bundle fits. A cut text starts with a marker saying how much was cut, and the bundle
   says ``truncated`` and which fields were. Cutting after redacting means a secret can never be cut into
   a piece the registry no longer recognises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.api.models import EXIT_CODE_RUNNING, LCMMachine
from agent.kits.timestamps import parse_time

BUNDLE_LIMIT = 48 * 1024
"""Bytes of a bundle's JSON: well under the broker's ``max_packet_size`` (64 KiB, deploy/mqtt) with the
message's envelope, and enough for a task's output tail and a journal tail."""
MARKER = "[truncated {cut} characters] "
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SHORTEST = 64
"""A text is never cut below this many characters while a longer one remains."""


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, redact) for v in value]
    return value


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _texts(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, text) of every string value."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(v, (*path, k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, (*path, i))]
    return []


def _set(value: Any, path: tuple[str | int, ...], text: str) -> None:
    for step in path[:-1]:
        value = value[step]
    value[path[-1]] = text


def bundle(
    parts: Mapping[str, Any], redact: Callable[[str], str], limit: int = BUNDLE_LIMIT
) -> dict[str, Any]:
    """The bundle of ``parts`` (JSON values by name), redacted, at most ``limit`` bytes of JSON; raises
    ValueError for a limit too small to hold even the parts' structure."""
    out: dict[str, Any] = {**_redacted(dict(parts), redact), "truncated": False}
    original: dict[str, int] = {}
    """Length before any cut, by field (a field may be cut twice: the marker counts from the original)."""
    while (over := _size(out) - limit) > 0:
        texts = [(p, t) for p, t in _texts(out) if len(t) > SHORTEST + len(MARKER) + 12]
        if not texts:
            raise ValueError(f"a bundle of these parts needs more than {limit} bytes")
        path, text = max(texts, key=lambda pt: len(pt[1]))
        name = ".".join(map(str, path))
        original.setdefault(name, len(text))
        # Characters, at least one byte each: cutting ``over`` of them and room for the marker is enough.
        keep = max(SHORTEST, len(text) - over - len(MARKER) - 12)
        _set(out, path, MARKER.format(cut=original[name] - keep) + text[-keep:])
        out["truncated"] = True
        out["truncatedFields"] = list(original)
    return out


def troubled_item(machine: LCMMachine) -> tuple[str, int] | None:
    """(name, attempt) of the item a stuck flag is about: the one running, else the failed one that ran
    last; None when every item is done."""
    statuses = machine.status.state_item_statuses
    entries = [(item.name, entry) for item in machine.spec.state_items
               if (entry := statuses.get(item.name)) is not None and entry.exit_code != 0]
    running = [(name, e) for name, e in entries if e.exit_code == EXIT_CODE_RUNNING]
    if running:
        name, entry = running[0]
        return name, entry.attempt
    failed = sorted(entries, key=lambda ne: parse_time(ne[1].finished_at or ne[1].started_at) or _EPOCH)
    if not failed:
        return None
    name, entry = failed[-1]
    return name, entry.attempt
