"""Secret values out of everything a runner reports: messages, log tails, artifacts, events.

Redaction is by value, not by name: a join token printed by a careless task is caught wherever it appears.
A multi-line value (a PEM key) is also redacted line by line, because logs are handled a line at a time.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.adapters.runners.artifacts import private_opener

MASK = "***"


class Redactor:
    """Replaces every occurrence of any of the given values with ``***``."""

    def __init__(self, values: Iterable[str]) -> None:
        fragments: set[str] = set()
        for value in values:
            fragments.add(value)
            fragments.update(value.splitlines())
        fragments.discard("")
        # Longest first, so a value containing another value is masked whole.
        ordered = sorted(fragments, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def tree(self, obj: Any) -> Any:
        """A copy of a JSON-like tree with every string (keys included) redacted."""
        if self._pattern is None:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.tree(k): self.tree(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.tree(v) for v in obj]
        return obj


class RedactedLog:
    """A run's output: redacted line by line into an artifact file, the last ``size`` lines kept in memory.

    Redacting as lines arrive means no raw secret is ever written or held for the tail.
    """

    def __init__(self, redactor: Redactor, path: Path, size: int = 40) -> None:
        self._redactor = redactor
        self._lines: deque[str] = deque(maxlen=size)
        self._file = open(path, "w", encoding="utf-8", opener=private_opener)  # noqa: SIM115 (closed in close)

    def add(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            redacted = self._redactor.text(line)
            self._lines.append(redacted)
            self._file.write(redacted + "\n")

    def tail(self) -> str:
        return "\n".join(self._lines)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RedactedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
