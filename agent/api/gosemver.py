"""Agent versions as Mirantis compares them: Masterminds/semver v1.5.0, the library their Go types vendor.

Which params an item's hash leaves out depends on the agent version (``AgentGreater187``/``257`` in
mcc-api), so the parse and the ordering must be that library's, quirks included:

- leading ``v`` characters are stripped first (all of them: ``vv0.3.0`` reads as ``0.3.0``), then the
  library's own pattern allows one more ``v``; minor and patch may be missing (``1`` is ``1.0.0``);
- numbers are decimal, leading zeros allowed, but must fit in an int64;
- pre-releases compare part by part (split on ``.``): two numbers (``strconv.ParseInt``, so ``-5`` and
  ``+5`` are numbers too) numerically, two strings as bytes, a number below a string, a missing part below
  a present one; ``0.3.0-99-g...`` is one string part and sorts above ``0.3.0-187-g...``;
- build metadata is ignored.

An unparsable version is InvalidVersionError where Mirantis' code panics (``semver.MustParse``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?",
    re.ASCII,
)
_INT64_MAX = 2**63 - 1
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)


class InvalidVersionError(ValueError):
    """Not a version Masterminds/semver parses; Mirantis' hash panics on it."""


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str

    def __gt__(self, other: Version) -> bool:
        return _compare(self, other) > 0


def _segment(text: str | None, version: str) -> int:
    if not text:
        return 0
    value = int(text.lstrip("."))
    if value > _INT64_MAX:
        raise InvalidVersionError(f"version {version!r}: segment {text.lstrip('.')} is out of range")
    return value


def parse(version: str) -> Version:
    """``semver.MustParse(strings.TrimLeft(version, "v"))``; raises InvalidVersionError where that panics."""
    trimmed = version.lstrip("v")
    match = _PATTERN.fullmatch(trimmed)
    if match is None:
        raise InvalidVersionError(f"agent version {version!r} is not a semantic version")
    major, minor, patch = (_segment(match.group(i), version) for i in (1, 2, 3))
    return Version(major, minor, patch, match.group(5) or "")


def _compare(a: Version, b: Version) -> int:
    for x, y in ((a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)):
        if x != y:
            return 1 if x > y else -1
    if a.pre == b.pre == "":
        return 0
    if a.pre == "":
        return 1
    if b.pre == "":
        return -1
    return _compare_pre(a.pre.split("."), b.pre.split("."))


def _compare_pre(ours: list[str], theirs: list[str]) -> int:
    for i in range(max(len(ours), len(theirs))):
        d = _compare_part(ours[i] if i < len(ours) else "", theirs[i] if i < len(theirs) else "")
        if d:
            return d
    return 0


def _as_int(part: str) -> int | None:
    """``strconv.ParseInt(part, 10, 64)``: None where it fails (not a number, or out of int64)."""
    if not _INT.fullmatch(part):
        return None
    value = int(part)
    return value if -(2**63) <= value <= _INT64_MAX else None


def _compare_part(s: str, o: str) -> int:
    if s == o:
        return 0
    if s == "":
        return -1
    if o == "":
        return 1
    si, oi = _as_int(s), _as_int(o)
    if si is None and oi is None:
        return 1 if s.encode() > o.encode() else -1
    if oi is None:
        return -1
    if si is None:
        return 1
    return 1 if si > oi else -1


AGENT_IN_MCC_216 = parse("0.3.0-187-gba894556")
AGENT_IN_MCC_219 = parse("v0.3.0-257-ga93244da")


def newer_than(agent_version: str, threshold: Version) -> bool:
    """``AgentGreaterNNN``: an empty version counts as newer than every threshold (the current agent)."""
    return agent_version == "" or parse(agent_version) > threshold
