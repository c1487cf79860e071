"""Fault injection: the failures a real API server and network produce, on demand, while clients run.

Tests (through the Python object), operators (``lcmctl sim fault``) and anything holding the admin token
(``POST /sim/v1/faults``) add rules at runtime. A rule matches requests by verb, resource, path and user and
either fails them with an HTTP error (``Retry-After`` included for 429/503, as the API server's priority and
fairness does) or delays them: before they are served, or (``answer``) after, so that a write takes effect and
its watch events go out at once while its answer arrives late, as over a congested return path. Two one-shot
actions act on the server itself: ``drop_watches`` ends every open watch stream (what an API server restart
or a load balancer cut looks like to a client), and ``compact`` drops the watch history, so resuming from an
older resourceVersion gets 410 Gone.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.sim.errors import ApiError, bad_request

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}
"""The ``Status.reason`` the API server uses with each code an injected error may carry."""


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; an empty field matches anything.

    ``resource`` is the plural, with ``/status`` for the subresource (``lcmmachines/status``); ``path`` is a
    regular expression searched in the URL path.
    """

    verb: str = ""
    resource: str = ""
    path: str = ""
    user: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.path)
        except re.error as exc:
            raise bad_request(f"fault path {self.path!r} is not a regular expression: {exc}") from exc

    def matches(self, verb: str, resource: str, path: str, user: str) -> bool:
        return (
            self.verb in ("", verb)
            and self.resource in ("", resource)
            and self.user in ("", user)
            and (not self.path or re.search(self.path, path) is not None)
        )


@dataclass
class Rule:
    """An error (``code`` set) or a delay (``latency_ms`` set, of the answer when ``answer``); ``count`` None
    means until cleared."""

    match: Match
    code: int = 0
    latency_ms: int = 0
    answer: bool = False
    count: int | None = None
    probability: float = 1.0
    retry_after: int | None = None
    fired: int = field(default=0, init=False)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The live rule set of one simulator; ``drop`` and ``compact`` are wired to its server and registry."""

    def __init__(
        self, *, drop: Callable[[], int], compact: Callable[[], None], rng: random.Random | None = None,
    ) -> None:
        self._drop = drop
        self._compact = compact
        self._rng = rng or random.Random()  # noqa: S311 -- fault timing, not security
        self._rules: list[Rule] = []

    @property
    def rules(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self._rules]

    def error(
        self, code: int, *, count: int | None = None, probability: float = 1.0,
        retry_after: int | None = None, verb: str = "", resource: str = "", path: str = "", user: str = "",
    ) -> None:
        """Fails matching requests with ``code`` and its usual Status reason, ``count`` times or forever."""
        if not 400 <= code <= 599:
            raise bad_request(f"fault code {code} is not an HTTP error code (400-599)")
        if retry_after is None and code in (429, 503):
            retry_after = 1
        self._add(Rule(Match(verb, resource, path, user), code=code, count=count, probability=probability,
                       retry_after=retry_after))

    def latency(
        self, ms: int, *, count: int | None = None, probability: float = 1.0,
        verb: str = "", resource: str = "", path: str = "", user: str = "", answer: bool = False,
    ) -> None:
        """Delays matching requests by ``ms`` before they are served, or their answers after (``answer``)."""
        if ms <= 0:
            raise bad_request(f"fault latency must be positive, got {ms} ms")
        match = Match(verb, resource, path, user)
        self._add(Rule(match, latency_ms=ms, count=count, probability=probability, answer=answer))

    def drop_watches(self) -> int:
        """Ends every open watch stream now; returns how many were open."""
        return self._drop()

    def compact(self) -> None:
        self._compact()

    def clear(self) -> None:
        self._rules.clear()

    def _add(self, rule: Rule) -> None:
        if rule.count is not None and rule.count <= 0:
            raise bad_request(f"fault count must be positive, got {rule.count}")
        if not 0.0 < rule.probability <= 1.0:
            raise bad_request(f"fault probability must be in (0, 1], got {rule.probability}")
        self._rules.append(rule)

    async def apply(self, *, verb: str, resource: str, path: str, user: str) -> float:
        """Sleeps for matching delays, then raises the first matching error; spent rules are removed.
        Returns the seconds the answer is to be held back once the request is served."""
        delay_ms = answer_ms = 0
        error: Rule | None = None
        for rule in list(self._rules):
            if not rule.match.matches(verb, resource, path, user) or self._rng.random() >= rule.probability:
                continue
            if rule.code and error is not None:
                continue
            rule.fired += 1
            if rule.count is not None and rule.fired >= rule.count:
                self._rules.remove(rule)
            if rule.code:
                error = rule
            elif rule.answer:
                answer_ms += rule.latency_ms
            else:
                delay_ms += rule.latency_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if error is not None:
            raise ApiError(error.code, REASONS.get(error.code, "Unknown"),
                           f"injected fault: {error.code} for {verb} {path}",
                           retry_after_seconds=error.retry_after)
        return answer_ms / 1000

    def command(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Runs one JSON command (the admin endpoint's and the CLI's form of the methods above)."""
        action = body.get("action")
        args = {k: v for k, v in body.items() if k != "action"}
        try:
            if action == "error":
                self.error(int(args.pop("code")), **_rule_args(args))
            elif action == "latency":
                self.latency(int(args.pop("ms")), **_rule_args(args))
            elif action == "drop_watches":
                return {"dropped": self.drop_watches()}
            elif action == "compact":
                self.compact()
            elif action == "clear":
                self.clear()
            elif action != "list":
                raise bad_request(f"unknown fault action {action!r}: one of error, latency, drop_watches, "
                                  "compact, clear, list")
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_request(f"bad fault {action!r}: {exc!r}") from exc
        return {"rules": self.rules}


def _rule_args(args: dict[str, Any]) -> dict[str, Any]:
    """Checks the optional fields of an ``error``/``latency`` command; anything else is a 400."""
    known: dict[str, Callable[[Any], Any]] = {
        "count": int, "probability": float, "retry_after": int, "verb": str, "resource": str, "path": str,
        "user": str, "answer": _flag}
    unknown = set(args) - set(known)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    return {k: (None if v is None else known[k](v)) for k, v in args.items()}


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value
