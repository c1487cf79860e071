"""Structured logs for journald: one JSON object per line, secrets replaced by ``***``.

Call sites keep the standard idiom, ``log.info("item %s started", name, extra={"machine": m, "item": name,
"attempt": n})``: the message is formatted only when a handler emits it, and the ``extra`` fields become
JSON fields that ``journalctl -o cat | jq 'select(.item == "x")'`` can select on.

Redaction happens in a handler filter, after formatting, so a secret is caught wherever it hides: in the
format string, in an argument, split across arguments, in an ``extra`` value or in a traceback. Values are
registered as they become known (the API token at start, a swarm join token when it is read).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

REDACTED = "***"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_installed: list[logging.Handler] = []


class SecretRegistry:
    """The secret values to hide; safe to extend from any thread while others log."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str) -> None:
        """Register values; empty strings are ignored (they would match everywhere)."""
        with self._lock:
            self._values.update(v for v in values if v)
            # Longest first, so a secret that contains another is replaced whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Formats the record's message and replaces secrets in it, its extras and its traceback."""

    def __init__(self, secrets: SecretRegistry) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the record, never its raw arguments
            message = f"{record.msg} (arguments that do not fit the format: {record.args!r})"
        record.msg, record.args = self.secrets.redact(message), None
        for key in extra_fields(record):
            record.__dict__[key] = self._redact(record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.secrets.redact(record.stack_info)
        return True

    def _redact(self, value: Any) -> Any:
        """Strings redacted inside containers too; other objects become their redacted ``str``."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {str(k): self._redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redact(v) for v in value]
        return self.secrets.redact(str(value))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extras, "exc"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {key: record.__dict__[key] for key in extra_fields(record)}
        entry.update(
            ts=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            level=record.levelname,
            logger=record.name,
            msg=record.getMessage(),
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a terminal: ``time LEVEL logger: message key=value...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{key}={record.__dict__[key]}" for key in extra_fields(record))
        return f"{line} {extras}" if extras else line


def extra_fields(record: logging.LogRecord) -> list[str]:
    """Names the caller passed with ``extra=``."""
    return [key for key in record.__dict__ if key not in _STANDARD and not key.startswith("_")]


def setup_logging(level: str | int, json: bool, secrets: SecretRegistry) -> None:
    """Route every logger to stderr (journald captures it); calling again (SIGHUP) replaces the setup."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
    _installed.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
