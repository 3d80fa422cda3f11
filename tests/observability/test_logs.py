"""``observability.logs``: the cheaper ``Logger.log`` and the formatters of ``gateway.cli.LOG_CONFIG``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from gateway.cli import JsonFormatter
from gateway.observability.hub import Hub
from gateway.observability.logs import MessageFormatter, log


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, _Records]]:
    found = logging.getLogger("tests.observability.logs")
    handler = _Records()
    found.addHandler(handler)
    found.setLevel(logging.INFO)
    found.propagate = False
    yield found, handler
    found.removeHandler(handler)


def test_log_is_logger_log_without_the_caller(logger: tuple[logging.Logger, _Records]) -> None:
    found, handler = logger
    log(found, logging.INFO, "mail to %s delivered", "j***@x.example", extra={"attempts": 2})
    log(found, logging.DEBUG, "below the level: %s", "dropped")
    [record] = handler.records
    assert record.getMessage() == "mail to j***@x.example delivered"
    assert (record.name, record.levelno, record.__dict__["attempts"]) == (found.name, logging.INFO, 2)
    assert (record.pathname, record.lineno, record.funcName) == ("(unknown file)", 0, None)
    found.disabled = True
    try:
        log(found, logging.ERROR, "a disabled logger writes nothing")
    finally:
        found.disabled = False
    assert len(handler.records) == 1
    with pytest.raises(KeyError):  # as Logger.log: extra may not overwrite a record's own fields
        log(found, logging.INFO, "x", extra={"message": "y"})


def test_log_goes_through_filters(logger: tuple[logging.Logger, _Records]) -> None:
    found, handler = logger
    found.addFilter(lambda record: "secret" not in record.getMessage())
    try:
        log(found, logging.INFO, "a secret")
        log(found, logging.INFO, "public")
    finally:
        found.filters.clear()
    assert [r.getMessage() for r in handler.records] == ["public"]


def test_message_formatter_writes_the_message_as_it_is() -> None:
    formatter, plain = MessageFormatter(), logging.Formatter("%(message)s")
    record = logging.makeLogRecord({"msg": '{"event":"signin","detail":"100%% %(x)s"}', "args": ()})
    assert formatter.format(record) == plain.format(record) == '{"event":"signin","detail":"100%% %(x)s"}'
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "failed %s", "args": ("here",), "exc_info": sys.exc_info()})
    text = MessageFormatter().format(failed)
    assert text == logging.Formatter("%(message)s").format(failed)
    assert text.startswith("failed here\nTraceback") and "ValueError: boom" in text


def test_json_formatter_line() -> None:
    record = logging.makeLogRecord(
        {"name": "gateway.mail", "levelno": 20, "levelname": "INFO", "msg": "é %s", "args": (1,)}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["logger"], entry["message"]) == ("info", "gateway.mail", "é 1")
    assert "é" in JsonFormatter().format(record)  # not escaped, as json.dumps(ensure_ascii=False)


def test_hub_counts_through_cached_children() -> None:
    hub = Hub([])
    record = {
        "app": "app-1",
        "connector": "email",
        "result": "success",
        "conditionalAccessStatus": "notApplied",
        "decisions": [{"step": "cross_tenant_access", "outcome": "allowed"}],
    }
    for _ in range(3):
        hub.signin(record)
        hub.tokens("app-1", ["id", "access"])
    hub.signin({**record, "result": "failure", "app": None})
    text = hub.metrics.exposition().decode()
    assert 'gateway_signins_total{app="app-1",connector="email",result="success"} 3.0' in text
    assert 'gateway_signins_total{app="none",connector="email",result="failure"} 1.0' in text
    assert 'gateway_tokens_issued_total{app="app-1",kind="access"} 3.0' in text
    assert 'gateway_policy_outcomes_total{outcome="notApplied",policy="conditional_access"} 4.0' in text
    assert 'gateway_policy_outcomes_total{outcome="allowed",policy="cross_tenant_access"} 4.0' in text
