"""Log output for long-running commands (workers): text for people, JSON for collectors.

``--log-format json`` writes one JSON object a line on stderr: ``ts`` (RFC 3339
UTC), ``level``, ``logger``, ``message``, and every structured field the record
carries (a worker's batch: ``plans``, ``events``, ``seconds``, ``queued``,
``lag_seconds``), so a collector needs no parsing of the message.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

import orjson

LOG_FORMATS: Final = ("text", "json")
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the record's extra fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(log_format: str = "text", level: int | str = logging.INFO) -> None:
    """Send the library's logs (``eventsource``, ``projections``) to stderr.

    Replaces handlers an earlier call installed, so it is safe to call again.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.set_name("eventsource-cli")
    for name in ("eventsource", "projections"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "eventsource-cli"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)


__all__ = ["LOG_FORMATS", "JsonFormatter", "configure_logging"]
