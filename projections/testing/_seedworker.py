"""A worker folding streams under this process's PYTHONHASHSEED (see ``hashseed``).

``python -m projections.testing._seedworker MODULE:ATTRIBUTE`` loads the projection,
answers ``{"ready": seed}``, then for each line on stdin (a JSON list of rows in the
JSONL exchange format) prints one line: each plan's state as canonical JSON, or the
error its fold raised.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

from eventsource.jsonl import row_to_event

from ..registry import _instantiate
from .properties import plan_ids, replay


def load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    module = __import__(module_name, fromlist=["_"])
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return _instantiate(obj)


def main() -> None:
    out = sys.stdout.buffer
    try:
        projection = load(sys.argv[1])
    except Exception as exc:
        out.write(orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}) + b"\n")
        out.flush()
        return
    out.write(orjson.dumps({"ready": os.environ.get("PYTHONHASHSEED")}) + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        events = [row_to_event(row) for row in orjson.loads(line)]
        states: dict[str, str] = {}
        for plan_id in plan_ids(events):
            try:
                states[str(plan_id)] = replay(projection, events, plan_id).decode()
            except Exception as exc:
                states[str(plan_id)] = f"raised {type(exc).__name__}: {exc}"
        out.write(orjson.dumps({"states": states}) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
