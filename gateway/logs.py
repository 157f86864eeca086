"""Logs are one JSON object per line, with the request id of the request they belong to.

Prompts and image data stay out of the logs unless `logging.log_bodies: true` (§8.4): the gateway never
logs a request body otherwise, long base64 runs in any message or traceback are elided (a database
error may quote a parameter), and the libraries that log whole payloads at DEBUG (boto3/botocore,
aiosqlite) are held at WARNING. With `log_bodies: true`, request bodies are logged at DEBUG (capped) and
nothing is elided or held back.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.settings import LoggingSettings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# A run this long of base64 (or URL-safe base64) characters is image data, not prose.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{100,}={0,2}")
PAYLOAD_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "sqlalchemy.engine")
MAX_BODY_LOG_CHARS = 100_000
body_log = logging.getLogger("gateway.bodies")


def elide_base64(text: str) -> str:
    return _BASE64_RUN.sub(lambda m: f"[{len(m.group(0))} chars of base64 elided]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: bool = True) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": elide_base64(message) if self.redact else message,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            exc = self.formatException(record.exc_info)
            entry["exc"] = elide_base64(exc) if self.redact else exc
        return orjson.dumps(entry).decode()


def configure(level: str, log_bodies: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact=not log_bodies))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if log_bodies else logging.WARNING)


def request_body(settings: LoggingSettings, body: dict[str, Any]) -> None:
    """With `logging.log_bodies: true` and DEBUG on, log what the client sent (capped)."""
    if settings.log_bodies and body_log.isEnabledFor(logging.DEBUG):
        text = orjson.dumps(body, default=str).decode()
        body_log.debug("request body: %s", text[:MAX_BODY_LOG_CHARS])
