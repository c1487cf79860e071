"""Reading a machine's own account of a failed boot: cloud-init's status and the agent's journal.

Pure functions over the text the machine gives (``cloud-init status --long``, ``journalctl -o cat`` of the
agent's JSON log lines), so what an operator is told is tested without booting anything.
"""

from __future__ import annotations

import json
import re

_ERROR_LEVELS = ("ERROR", "CRITICAL")
_MAX = 300


def cloud_init_summary(status_long: str) -> str:
    """``cloud-init done``, ``cloud-init running``, or ``cloud-init error: <detail>``."""
    found = re.search(r"^status:\s*(\S+)", status_long, re.MULTILINE)
    status = found.group(1) if found else "unknown"
    if status != "error":
        return f"cloud-init {status}"
    detail = status_long.split("detail:", 1)[1].strip() if "detail:" in status_long else ""
    return f"cloud-init error: {_clip(' '.join(detail.split()))}" if detail else "cloud-init error"


_UNIT_STATES = {
    "active": "lcm-agent runs",
    "activating": "lcm-agent is starting (it reports ready once registered)",
    "failed": "lcm-agent failed",
    "inactive": "lcm-agent is not running",
}


def agent_unit_summary(state: str) -> str:
    """``systemctl is-active lcm-agent`` in words."""
    state = state.strip()
    return _UNIT_STATES.get(state, f"lcm-agent is {state or 'unknown'}")


def last_agent_error(journal: str) -> str:
    """The message of the agent's last ERROR log line ("" if none); plain lines (a crash's traceback,
    systemd's own) count when they say error."""
    for line in reversed(journal.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if str(record.get("level", "")).upper() in _ERROR_LEVELS:
                return _clip(str(record.get("msg", "")))
        elif re.search(r"\berror\b", line, re.IGNORECASE):
            return _clip(line.strip())
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"
