"""Structured logs: one JSON object per line, with the request id when there is one."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import orjson

from app.config import Settings

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# Control characters (a client can put `%00` or `%0a` in a path) and line separators escaped in
# a text log's message, so a message stays on its line: nothing a client sends can forge another
# record or hide in a NUL. (A traceback, appended after the message, keeps its lines.)
_CONTROL = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


class TextFormatter(logging.Formatter):
    """One line per record: time (UTC), level, logger, the request id when there is one, and
    the message: `2026-11-28T05:44:28.123Z INFO syncauction.http req_…: GET /v1/products 200`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = request_id_var.get()
        where = f" {request_id}" if request_id else ""
        line = f"{record.asctime} {record.levelname} {record.name}{where}: {record.message}"
        return line.translate(_CONTROL)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root = logging.getLogger("syncauction")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    # The libraries' own records go out the same way: arq's warnings and job failures (its
    # per-job INFO lines would double every job), and uvicorn's errors (a port in use, a
    # failed start-up), so that a JSON log stays JSON.
    for name in ("arq", "uvicorn.error"):
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        # Their INFO lines are per job and per connection: shown when debugging only.
        library.setLevel(
            root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
        )
        library.propagate = False
    # httpx logs every request URL at INFO; store query-string auth carries secrets there.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
