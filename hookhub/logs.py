"""Structured logging: one event name per line plus the ids involved, as JSON or text.

Call sites log an event name and ``extra={...}`` fields, never an f-string of a payload.
Header values that carry credentials are never passed to a logger (see ``redact_headers``).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's duplicate of the message with terminal colours
}
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("[redacted]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


MAX_ERROR_CHARS = 200
_CREDENTIALS = re.compile(r"(://)[^\s/@]+@")


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message``, short and without secrets.

    SQLAlchemy wraps the driver's error with the statement and its parameters: only the
    driver's own first line is kept. An error raised from another (``raise ... from``) names
    that cause too. Credentials in URLs (``scheme://user:pass@``) are cut.
    """
    described = _describe_one(exc)
    cause = exc.__cause__
    if cause is not None and cause is not getattr(exc, "orig", None):
        described += " (" + _describe_one(cause) + ")"
    if len(described) > MAX_ERROR_CHARS:
        described = described[: MAX_ERROR_CHARS - 1] + "…"
    return described


def _describe_one(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None)
    shown = inner if isinstance(inner, BaseException) else exc
    lines = str(shown).strip().splitlines()
    message = _CREDENTIALS.sub(r"\1…@", lines[0] if lines else "")
    name = type(shown).__name__
    return f"{name}: {message}" if message else name


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = (
            f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {fields}".rstrip()
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
