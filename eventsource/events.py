"""Event values: what callers append and what the store reads back."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple, Protocol
from uuid import UUID

import orjson

from .errors import InvalidInput

STAGES: Final = ("analysis", "design", "development", "implementation", "evaluation")
"""The ``course_designer_stage`` enum, in its declared order."""

EVENT_TYPE_MAX: Final = 255
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append.

    ``id`` defaults to a time-ordered UUIDv7 chosen by the store (so a batch
    keeps its order); ``occurred_at`` defaults to the append's transaction time
    and may be set to backfill the past. Timestamps must be timezone-aware.
    """

    event_type: str
    payload: Mapping[str, Any]
    stage: str | None = None
    actor_user_id: UUID | None = None
    occurred_at: datetime | None = None
    id: UUID | None = None


class RecordedEvent(NamedTuple):
    """One row of ``course_designer_plan_events``, as stored.

    A named tuple rather than a dataclass: a stream read builds one per row, and a
    tuple is built in a tenth of the time of a frozen dataclass. It is immutable
    all the same; ``event._replace(deleted_at=...)`` gives a changed copy.
    """

    id: UUID
    plan_id: UUID
    event_type: str
    payload: Mapping[str, Any]
    stage: str | None
    actor_user_id: UUID | None
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def position(self) -> tuple[datetime, datetime, UUID]:
        """The event's place in its plan's stream (before any tie rank)."""
        return (self.occurred_at, self.created_at, self.id)


def check_timestamp(value: datetime, field: str) -> datetime:
    """Reject naive datetimes; return the instant in UTC."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime, got {type(value).__name__}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field} is a naive datetime; give it a timezone (for example UTC)", field=field
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{field} {value.isoformat()} is outside the years 1-9999 in UTC", field=field
        ) from None


JSON_INT_MIN: Final = -(2**63)
JSON_INT_MAX: Final = 2**64 - 1
"""The integers the JSON codec (orjson) writes and reads back exactly."""

MAX_PAYLOAD_DEPTH: Final = 64
"""How deep objects and arrays may nest in a payload, the payload object being level 1.

Far below what the codecs and the interpreter can take (orjson writes 254 levels and
reads 1,024, jsonb and Python's own recursion run out somewhere in the thousands), so a
payload is refused with its path before any of them fails, on every backend alike.
"""

Path = tuple[str | int, ...]
"""Where a value sits in a JSON document: object keys and array indexes."""


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any) -> Any:
    """orjson ``default``: any other Mapping is written as a JSON object."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError


def _where(root: str | None, path: Path) -> str:
    """``payload.stages[2].name``; with no root the first key names the column.

    A long path keeps its first and last four steps (deep nesting would make a
    message of hundreds of characters).
    """
    steps = [f"[{step}]" if isinstance(step, int) else f".{step}" for step in path]
    if len(steps) > 10:
        steps = [*steps[:4], f"[... {len(steps) - 8} levels ...]", *steps[-4:]]
    if root is None:
        if not steps:
            return "the line"
        steps[0] = steps[0].removeprefix(".")
        return "".join(steps)
    return root + "".join(steps)


def _field(root: str | None, path: Path) -> str | None:
    if root is not None:
        return root
    return str(path[0]) if path else None


def _too_deep(root: str | None, path: Path) -> InvalidInput:
    return InvalidInput(
        f"{_where(root, path)} nests objects and arrays more than {MAX_PAYLOAD_DEPTH} levels "
        "deep; flatten it (or store the deep part as a string)",
        field=_field(root, path),
    )


def _check_json(document: Any, root: str | None = "payload") -> None:
    """Refuse what is not portable JSON, naming the path of the first offence.

    PostgreSQL's jsonb refuses ``\\u0000`` and has no NaN/Infinity; SQLite must refuse
    the same so both backends store exactly the same set of payloads. A walk with a
    stack of its own, not recursion: the nesting limit is checked before any depth
    could exhaust the interpreter. ``root`` is what the document is called in
    messages (``payload``); ``None`` for a whole exchange-format line, whose first
    key then names the column.
    """
    offset = 0 if root is None else 1  # the level of a container at a path
    stack: list[tuple[Any, Path]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidInput(
                    f"{_where(root, path)} contains a NUL character (\\u0000), which jsonb "
                    "cannot store; remove it",
                    field=_field(root, path),
                )
            if not _is_utf8(value):
                raise InvalidInput(
                    f"{_where(root, path)} contains a lone surrogate, which is not valid "
                    "UTF-8; fix the text",
                    field=_field(root, path),
                )
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not JSON_INT_MIN <= value <= JSON_INT_MAX:
                raise InvalidInput(
                    f"{_where(root, path)} is an integer outside {JSON_INT_MIN}..{JSON_INT_MAX}; "
                    "store it as a string",
                    field=_field(root, path),
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput(
                    f"{_where(root, path)} is {value!r}; JSON has no NaN or Infinity, use null "
                    "or a string",
                    field=_field(root, path),
                )
        elif isinstance(value, Mapping | list | tuple):
            if len(path) + offset > MAX_PAYLOAD_DEPTH:
                raise _too_deep(root, path)
            children: list[tuple[Any, Path]] = []
            if isinstance(value, Mapping):
                for key, item in value.items():
                    _check_key(key, root, path)
                    children.append((item, (*path, key)))
            else:
                children = [(item, (*path, index)) for index, item in enumerate(value)]
            stack.extend(reversed(children))  # the first offence in document order
        else:
            raise InvalidInput(
                f"{_where(root, path)} holds a {type(value).__name__}, which is not JSON; "
                "use objects, arrays, strings, numbers, booleans or null",
                field=_field(root, path),
            )


def _check_key(key: Any, root: str | None, path: Path) -> None:
    where, field = _where(root, path), _field(root, path)
    if not isinstance(key, str):
        raise InvalidInput(f"{where} has a non-string key {key!r}", field=field)
    if "\x00" in key:
        raise InvalidInput(
            f"{where} has a key containing a NUL character (\\u0000); remove it", field=field
        )
    if not _is_utf8(key):
        raise InvalidInput(
            f"{where} has a key containing a lone surrogate (not valid UTF-8); fix it",
            field=field,
        )


# -- JSON text ------------------------------------------------------------------
# orjson reads integers beyond 64 bits as floats (18446744073709551617 becomes
# 1.8446744073709552e+19) and refuses NaN, lone surrogates and deep nesting with no
# word of where. Text that may hold such a thing is read again, exactly, by the
# standard library, and handed to the same checks as values an API caller passes.

_LONG_DIGITS: Final = re.compile(r"[0-9]{19,}")  # -2**63 has 19 digits
_LONG_DIGITS_BYTES: Final = re.compile(rb"[0-9]{19,}")
_TOKENS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def _text(source: str | bytes) -> str:
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"not valid UTF-8 ({exc})") from None


def _openers(source: str | bytes) -> int:
    if isinstance(source, str):
        return source.count("{") + source.count("[")
    return source.count(b"{") + source.count(b"[")


def _check_nesting(text: str, limit: int, root: str | None) -> None:
    """Refuse text whose objects and arrays nest more than ``limit`` levels, naming
    the first too deep; one pass over its tokens, no recursion (invalid JSON is only
    scanned as far as it goes)."""
    path: list[str | int] = []  # per open container, the step to its current child
    objects: list[bool] = []
    key_next = False
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark[0] == '"':
            if key_next and path:
                try:
                    path[-1] = json.loads(mark)
                except ValueError:
                    path[-1] = mark[1:-1]
                key_next = False
        elif mark in "{[":
            if len(objects) >= limit:
                raise _too_deep(root, tuple(path))
            objects.append(mark == "{")
            path.append("" if mark == "{" else 0)
            key_next = mark == "{"
        elif mark in "}]":
            if objects:
                objects.pop()
                path.pop()
            key_next = False
        elif mark == "," and objects:
            if objects[-1]:
                key_next = True
            else:
                index = path[-1]
                path[-1] = index + 1 if isinstance(index, int) else 0


def parse_json(source: str | bytes, *, root: str | None = "payload") -> Any:
    """JSON text as exact values, refused with the path of what cannot be stored.

    The one reading of JSON text that writes go through (``append --payload``, every
    line of an import): integers keep every digit, so one beyond 64 bits reaches the
    payload checks and is refused as through the API, never turned into a float;
    nesting beyond :data:`MAX_PAYLOAD_DEPTH` is refused naming its path, as are NaN,
    Infinity and lone surrogates, which orjson refuses with no word of where.

    Args:
        root: what the text is called in messages (``payload``); ``None`` for an
            exchange-format line, an object whose keys are the columns (its
            ``payload`` may then nest one level more than the line itself).

    Raises:
        InvalidInput: not JSON, or JSON that no backend can store (naming the path).
    """
    limit = MAX_PAYLOAD_DEPTH + (1 if root is None else 0)
    try:
        value = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        text = _text(source)
        _check_nesting(text, limit, root)
        try:
            exact = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            _check_json(exact, root)  # NaN, Infinity, a lone surrogate: named
        raise InvalidInput(f"not valid JSON ({exc})") from None
    if _openers(source) > limit:
        _check_nesting(_text(source), limit, root)
    long = (
        _LONG_DIGITS.search(source)
        if isinstance(source, str)
        else _LONG_DIGITS_BYTES.search(source)
    )
    if long is not None:
        return json.loads(_text(source))  # every digit of every integer
    return value


# -- payloads ---------------------------------------------------------------------


def validate_payload(payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> bytes:
    """Check a payload and return its JSON encoding (in jsonb's form, see :func:`as_jsonb`).

    Raises:
        InvalidInput: not an object, not JSON, NaN/Infinity, NUL, an integer beyond
            64 bits, nested beyond :data:`MAX_PAYLOAD_DEPTH`, or too large.
    """
    return prepare_payload(payload, max_bytes)[1]


def _fast_encode(payload: Any) -> tuple[bytes, dict[str, Any]] | None:
    """The common case in C: a plain dict that orjson writes and reads back equal.

    orjson itself refuses lone surrogates, non-string keys, out-of-range integers
    and nesting past 254 levels; NaN/Infinity (which it writes as null) and tuples
    make the round-tripped value differ; NUL shows as an escape in the output; a
    payload with more containers than the nesting limit may nest too deep. Any of
    those falls back to the precise walk, which names the offending path.
    """
    if type(payload) is not dict:
        return None
    try:
        encoded = orjson.dumps(payload)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if b"\\u0000" in encoded:
        return None
    decoded = orjson.loads(encoded)
    if decoded != payload:
        return None
    if _openers(encoded) > MAX_PAYLOAD_DEPTH and not _within_depth(decoded):
        return None
    return encoded, decoded


def _within_depth(payload: dict[str, Any]) -> bool:
    """Whether decoded JSON nests at most :data:`MAX_PAYLOAD_DEPTH` levels (a walk over
    its containers only, level by level)."""
    level: list[Any] = [payload]
    for _ in range(MAX_PAYLOAD_DEPTH):
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below.extend(item for item in items if type(item) is dict or type(item) is list)
        if not below:
            return True
        level = below
    return False


def _encode(payload: Any, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise InvalidInput(
            f"payload must be a JSON object, got {type(payload).__name__}", field="payload"
        )
    fast = _fast_encode(payload)
    if fast is not None:
        encoded, decoded = fast
    else:
        _check_json(payload, "payload")
        encoded = orjson.dumps(payload, default=_plain)
        decoded = orjson.loads(encoded)
    if len(encoded) > max_bytes:
        raise InvalidInput(
            f"payload is {len(encoded)} bytes, over the limit of {max_bytes}; "
            "store large data elsewhere and reference it",
            field="payload",
        )
    return encoded, decoded


# Numbers jsonb would give back differently: negative zero and exponent floats.
# orjson writes no whitespace, so a number starts right after ``:``, ``,`` or ``[``
# (a string containing such text only costs a needless walk).
_JSONB_SENSITIVE = re.compile(rb"[:,\[](?:-0\.0[,\]}]|-?[0-9]+(?:\.[0-9]+)?e)")


def normalize_payload(payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Validate a payload and return it as plain JSON values (dicts, lists, ...).

    Raises:
        InvalidInput: as :func:`validate_payload`.
    """
    return prepare_payload(payload, max_bytes)[0]


def prepare_payload(
    payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> tuple[dict[str, Any], bytes]:
    """Validate a payload; return it in jsonb's form, and as JSON bytes of that form.

    The form (see :func:`as_jsonb`) is jsonb's numbers and jsonb's key order, nested
    objects included; the bytes keep that order, so SQLite stores the text PostgreSQL
    would give back and both hand reducers the same payload.

    Raises:
        InvalidInput: as :func:`validate_payload`.
    """
    encoded, decoded = _encode(payload, max_bytes)
    form = decoded
    # orjson always signs an exponent (1e+16, 1.5e-7): cheap substring looks first.
    if (b"e+" in encoded or b"e-" in encoded or b"-0.0" in encoded) and _JSONB_SENSITIVE.search(
        encoded
    ):
        form = _jsonb_numbers(form)
    if encoded.count(b"{") == 1:
        # No object inside (a string holding a brace only costs the walk below):
        # the payload's own keys are all there is to order.
        ordered = _key_order(tuple(form)) if len(form) > 1 else None
        if ordered is not None:
            form = {key: form[key] for key in ordered}
    else:
        form = _jsonb_keys(form)
    if form is decoded:
        return decoded, encoded  # given in jsonb's order already
    return form, orjson.dumps(form)  # insertion order: jsonb's


def _jsonb_number(value: float) -> int | float:
    text = orjson.dumps(value).decode()
    if "e" not in text and "E" not in text:
        return 0.0 if value == 0 else value  # jsonb has no negative zero
    exact = Decimal(text)
    # jsonb prints numeric without an exponent: an integral value reads back as int.
    if exact == exact.to_integral_value() and JSON_INT_MIN <= exact <= JSON_INT_MAX:
        return int(exact)
    return value  # beyond 64-bit integers orjson reads jsonb's digits back as a float


def _jsonb_numbers(value: Any) -> Any:
    if isinstance(value, float):
        return _jsonb_number(value)
    if isinstance(value, dict):
        return {key: _jsonb_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonb_numbers(item) for item in value]
    return value


def jsonb_key(key: str) -> tuple[int, bytes]:
    """jsonb's order of object keys: shorter first (in UTF-8 bytes), then bytewise."""
    raw = key.encode("utf-8")
    return len(raw), raw


_KEY_ORDERS: dict[tuple[str, ...], tuple[str, ...] | None] = {}
"""Per tuple of keys as given, jsonb's order of them (None: the same). Payloads of one
event type share their keys, so the sorting is done once per shape, not per append."""
_KEY_ORDERS_MAX: Final = 4096


def _key_order(keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """jsonb's order of ``keys``, or None when they are in it already."""
    try:
        return _KEY_ORDERS[keys]
    except KeyError:
        pass
    # ASCII keys are as long in bytes as in characters: two sorts in C (the second,
    # by length, is stable) give jsonb's order with no Python key function.
    if all(map(str.isascii, keys)):
        ordered = tuple(sorted(sorted(keys), key=len))
    else:
        ordered = tuple(sorted(keys, key=jsonb_key))
    if len(_KEY_ORDERS) >= _KEY_ORDERS_MAX:
        _KEY_ORDERS.clear()  # arbitrary keys (maps used as data) must not grow it forever
    found = _KEY_ORDERS[keys] = None if ordered == keys else ordered
    return found


def _jsonb_keys(value: Any) -> Any:
    """``value`` with every object's keys in jsonb's order (the same object when they
    are already; a copy, sharing what needs no change, when not).

    On every append's path, so it looks only at containers and sorts each shape of
    keys once (see :data:`_KEY_ORDERS`).
    """
    if type(value) is list:
        out = value
        for index, item in enumerate(value):
            if type(item) is dict or type(item) is list:
                new = _jsonb_keys(item)
                if new is not item:
                    if out is value:
                        out = list(value)
                    out[index] = new
        return out
    if type(value) is not dict:
        return value
    result = value
    if len(value) > 1:
        ordered = _key_order(tuple(value))
        if ordered is not None:
            result = {key: value[key] for key in ordered}
    for key, item in value.items():
        if type(item) is dict or type(item) is list:
            new = _jsonb_keys(item)
            if new is not item:
                if result is value:
                    result = dict(value)
                result[key] = new  # in its place: the key is there already
    return result


def as_jsonb(value: Any) -> Any:
    """JSON data exactly as PostgreSQL's ``jsonb`` gives it back.

    jsonb stores numbers as ``numeric``: ``-0.0`` reads back as ``0.0`` and a float
    orjson writes with an exponent (``1e16``) as the integer ``10000000000000000``.
    It keeps an object's keys in its own order, shorter keys first, then bytewise
    (``{"b", "aa"}``; see :func:`jsonb_key`), at every level. The store writes this
    form on every backend, so SQLite and PostgreSQL hold, and fold, the very same
    payloads, down to the order a reducer iterates their keys in.
    """
    return _jsonb_keys(_jsonb_numbers(value))


def same_json(left: Any, right: Any) -> bool:
    """Whether two JSON values are the same content.

    Numbers compare by value: PostgreSQL's ``jsonb`` stores them as ``numeric``,
    so ``-0.0`` comes back as ``0.0`` and ``1e16`` as the integer ``10000000000000000``.
    Booleans are not numbers here (``true`` is not ``1``).
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        # A float written as decimal text may come back as an int of that text.
        return left == right if type(left) is type(right) else float(left) == float(right)
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(same_json, left, right))
    return type(left) is type(right) and bool(left == right)


IMMUTABLE_FIELDS: Final = (
    "plan_id",
    "event_type",
    "payload",
    "stage",
    "actor_user_id",
    "occurred_at",
)
"""What a re-sent event id must repeat exactly (``created_at`` too, on import)."""


def _same(left: Any, right: Any) -> bool:
    """Same stored content: JSON by value (as jsonb keeps numbers), instants in UTC."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return same_json(left, right)
    if isinstance(left, datetime) and isinstance(right, datetime):
        return left.astimezone(UTC) == right.astimezone(UTC)
    return bool(left == right)


def differing_fields(stored: RecordedEvent, **candidate: Any) -> list[str]:
    """The fields of ``candidate`` whose content differs from the stored event's.

    The one idempotency comparison, for appends and imports: a field given as
    ``None`` where the store would have chosen the value (an ``occurred_at``
    left to default) is not compared.
    """
    names: list[str] = [name for name in IMMUTABLE_FIELDS if name in candidate]
    names += [name for name in candidate if name not in IMMUTABLE_FIELDS]
    return [
        name
        for name in names
        if not (name == "occurred_at" and candidate[name] is None)
        and not _same(candidate[name], getattr(stored, name))
    ]


def is_blank(text: str) -> bool:
    """Nothing to see, so no event type: only whitespace and format characters
    (category Cf, such as U+200B ZERO WIDTH SPACE, U+FEFF, U+2060 WORD JOINER), or
    nothing at all."""
    if text.isascii():
        return not text.strip()
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


_VALID_TYPES: Final[dict[str, None]] = {}
"""Event types already found valid: a batch repeats a handful of types."""


def validate_event_type(event_type: Any) -> str:
    if type(event_type) is str and event_type in _VALID_TYPES:
        return event_type
    if not isinstance(event_type, str):
        raise InvalidInput("event_type must be a string", field="event_type")
    if is_blank(event_type):
        raise InvalidInput(
            f"event_type is blank ({event_type[:20]!a}: only whitespace or invisible "
            "format characters); give the event a type name",
            field="event_type",
        )
    if len(event_type) > EVENT_TYPE_MAX:
        raise InvalidInput(
            f"event_type is {len(event_type)} characters, over the column's {EVENT_TYPE_MAX}",
            field="event_type",
        )
    if "\x00" in event_type:
        raise InvalidInput("event_type contains a NUL character; remove it", field="event_type")
    if not _is_utf8(event_type):
        raise InvalidInput(
            "event_type contains a lone surrogate, which is not valid UTF-8", field="event_type"
        )
    if type(event_type) is str:
        if len(_VALID_TYPES) >= 1024:
            _VALID_TYPES.clear()
        _VALID_TYPES[event_type] = None
    return event_type


def validate_stage(stage: Any) -> str | None:
    if stage is None:
        return None
    if stage not in STAGES:
        raise InvalidInput(
            f"stage {stage!r} is not one of {', '.join(STAGES)} (or null)", field="stage"
        )
    return str(stage)


class PayloadReaders(Protocol):
    """What reads payloads of known event types and refuses those it cannot read
    (``eventsource.payload_models.PayloadModels``, the projections' models)."""

    def check(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Raise :class:`~eventsource.errors.InvalidEventPayload` if a reader of
        ``event_type`` cannot read ``payload``; types nobody reads pass."""
        ...


class Content(NamedTuple):
    """What an event stores, checked, in the form the store writes on every backend."""

    event_type: str
    payload: dict[str, Any]
    payload_json: bytes
    stage: str | None


def check_content(
    event_type: Any,
    payload: Any,
    stage: Any,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    readers: PayloadReaders | None = None,
) -> Content:
    """The one check of what an event stores, shared by every write of the library:
    ``append`` (and ``eventsource append``) and every line of an import.

    The type, the payload (portable JSON within the limits, in jsonb's form), the
    stage; then, with ``readers``, that the payload models of the projections that
    read the type accept the payload as it will be read back.

    Raises:
        InvalidInput: naming the field (and, in a payload, the path).
        InvalidEventPayload: a reader's model refuses the payload.
    """
    kind = validate_event_type(event_type)
    form, encoded = prepare_payload(payload, max_payload_bytes)
    column = validate_stage(stage)
    if readers is not None:
        readers.check(kind, form)
    return Content(kind, form, encoded, column)


def check_record_times(
    created_at: datetime, updated_at: datetime, deleted_at: datetime | None
) -> None:
    """Refuse record times no row of the table can have: a ``deleted_at`` before
    ``created_at`` (a row retracted before it was recorded would be live at no
    record time, and ``known_at`` reads would disagree with its own columns), or
    an ``updated_at`` before ``created_at`` (the host's ``set_timestamp`` trigger
    only ever moves it forward from the insert's ``now()``).

    Raises:
        InvalidInput: naming ``deleted_at`` or ``updated_at``.
    """
    if deleted_at is not None and deleted_at < created_at:
        raise InvalidInput(
            f"deleted_at {deleted_at.isoformat()} is before created_at "
            f"{created_at.isoformat()}; an event cannot be retracted before it was recorded",
            field="deleted_at",
        )
    if updated_at < created_at:
        raise InvalidInput(
            f"updated_at {updated_at.isoformat()} is before created_at "
            f"{created_at.isoformat()}; a row cannot change before it was recorded",
            field="updated_at",
        )
