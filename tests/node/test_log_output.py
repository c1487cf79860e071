"""Logs reach journald as one JSON object per line, with structured fields and no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agent.kits.logs import RedactingFilter, SecretRegistry, setup_logging

TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl"


@pytest.fixture
def secrets() -> Iterator[SecretRegistry]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield SecretRegistry([TOKEN])
    root.handlers[:] = handlers  # leave the root logger as pytest's own capture expects it
    root.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_each_record_is_one_json_line_with_structured_fields(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info", json=True, secrets=secrets)
    logging.getLogger("agent.daemon.items").info(
        "item %s failed:\nexit %d", "docker-install", 2,
        extra={"machine": "m1", "item": "docker-install", "attempt": 3},
    )
    [entry] = _lines(capsys)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "agent.daemon.items"
    assert entry["msg"] == "item docker-install failed:\nexit 2"
    assert (entry["machine"], entry["item"], entry["attempt"]) == ("m1", "docker-install", 3)
    assert entry["ts"].endswith("+00:00")


def test_records_below_the_level_are_never_formatted(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
) -> None:
    class Expensive:
        def __str__(self) -> str:
            raise AssertionError("formatted a record that is not emitted")

    setup_logging("WARNING", json=True, secrets=secrets)
    logging.getLogger("agent").debug("state %s", Expensive())
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("message", "args", "extra"),
    [
        (f"joining with {TOKEN}", (), {}),
        ("joining with %s", (TOKEN,), {}),
        ("joining with %s%s", (TOKEN[:20], TOKEN[20:]), {}),  # split across arguments
        ("params %r", ({"token": TOKEN},), {}),
        ("joining", (), {"item": f"join --token {TOKEN}"}),
        ("joining", (), {"params": {"join": [f"--token={TOKEN}"]}, "attempt": 2}),
    ],
)
def test_registered_secrets_are_replaced_wherever_they_appear(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
    message: str, args: tuple[object, ...], extra: dict[str, str],
) -> None:
    setup_logging("INFO", json=True, secrets=secrets)
    logging.getLogger("agent").warning(message, *args, extra=extra)
    out = capsys.readouterr().err
    assert TOKEN not in out
    assert "***" in out


def test_secrets_registered_later_and_in_tracebacks_are_hidden(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", json=True, secrets=secrets)
    secrets.add("late-secret-value", "")
    try:
        raise RuntimeError("auth failed for late-secret-value")
    except RuntimeError:
        logging.getLogger("agent").exception("request failed")
    [entry] = _lines(capsys)
    assert "late-secret-value" not in json.dumps(entry)
    assert "RuntimeError: auth failed for ***" in entry["exc"]


def test_plain_text_mode_for_terminals_keeps_fields_and_redaction(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", json=False, secrets=secrets)
    logging.getLogger("agent").info("token %s", TOKEN, extra={"machine": "m1"})
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO agent: token *** machine=m1")


def test_setting_up_again_replaces_the_handler_instead_of_duplicating_lines(
    secrets: SecretRegistry, capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", json=True, secrets=secrets)
    setup_logging("DEBUG", json=True, secrets=secrets)  # a SIGHUP reload
    logging.getLogger("agent").debug("once")
    assert [e["msg"] for e in _lines(capsys)] == ["once"]


def test_a_format_mistake_keeps_the_record_but_not_the_raw_secret(secrets: SecretRegistry) -> None:
    # Unhandled, logging's handleError would print the raw arguments to stderr.
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "joining with %d", (TOKEN,), None)
    assert RedactingFilter(secrets).filter(record)
    assert record.getMessage() == "joining with %d (arguments that do not fit the format: ('***',))"
