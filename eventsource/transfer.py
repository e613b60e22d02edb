"""Import and export of the JSONL exchange format (``eventsource.jsonl``).

An import is one transaction: it streams the file in chunks, and a bad line (or
any failure) rolls back everything, naming the line. The input is read once, as it
arrives, so it may be a pipe, stdin (``-``) or a process substitution
(``<(zcat log.gz)``): nothing counts or rewinds it first. Ids, timestamps and
``deleted_at`` are kept exactly. Rows already stored with the same content are
skipped, so importing a file twice changes nothing. On PostgreSQL new rows go in
with ``COPY``; the import holds ``SHARE ROW EXCLUSIVE`` on the event table so no
append can interleave with it (plan-level locks would not scale to a whole file).

Parents. ``create_parents`` inserts minimal ``users`` and ``course_designer_plans``
rows for what the file names and the database lacks, but only into the stand-ins
``eventsource migrate`` created for a standalone database. Those carry a mark
(``migrations/versions/0001``: a table comment on PostgreSQL, a comment in the
``CREATE TABLE`` text SQLite keeps). The mark is on the table itself rather than a
row in a table of the library's: it cannot outlive the stand-in or be copied onto
a table the host made later, and a DBA sees it in the table's description. A host's
tables carry no mark, and the import refuses to write a row into them unless told
to (``allow_host_parents``): a plan row made up from an event file would be a plan
the host service never created, with none of its members, stages or checks.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import IO, Any, BinaryIO, Final
from uuid import UUID, uuid5

import orjson
from sqlalchemy import Connection, func, select, update

from .errors import (
    HostParentsRefused,
    IdempotencyConflict,
    InvalidEventPayload,
    InvalidInput,
    UnknownReference,
    UnusableFile,
)
from .events import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    IMMUTABLE_FIELDS,
    PayloadReaders,
    RecordedEvent,
    check_content,
    check_record_times,
    differing_fields,
    parse_json,
)
from .failures import describe_os_error
from .hooks import WriteNotice
from .jsonl import dumps_row, event_to_row, row_to_event
from .store import EventStore
from .tables import course_designer_plans, users

CHUNK: Final = 2000
SYSTEM_USER_NAMESPACE: Final = UUID("5b0a4a3e-6f0f-4f5e-9a55-0c4c1f8a9d10")
STAND_IN_MARK: Final = "eventsource stand-in"
"""What ``eventsource migrate`` writes on the parent tables it creates itself."""

Progress = Callable[[int], None]
"""Called with the number of lines (or rows) just processed."""

Phase = Callable[[str, int | None], Progress]
"""Called as an import enters a phase after reading (``"recording changes"`` with
the number of plans, then ``"committing"``); returns that phase's progress."""

STDIN: Final = "-"


@dataclass(frozen=True, slots=True)
class ImportResult:
    read: int
    inserted: int
    unchanged: int
    plans: int
    users_created: int = 0
    plans_created: int = 0


def parse_lines(
    lines: Iterable[bytes | str],
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    readers: PayloadReaders | None = None,
) -> Iterator[tuple[int, RecordedEvent]]:
    """Parse and validate JSONL lines, yielding ``(line_number, event)``.

    Each line goes through the checks an append makes (``events.check_content``:
    the same function, so an import refuses exactly what the API refuses), its
    payload in the form the store writes; and neither ``deleted_at`` nor
    ``updated_at`` may come before ``created_at``. With ``readers``, payloads of
    the types projections read must pass their models, deleted rows too (a
    restore would bring them back).

    Raises:
        InvalidInput: the message starts with ``line N:`` and names the field.
        InvalidEventPayload: a projection's payload model refuses a payload.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = row_to_event(parse_json(line, root=None))
            content = check_content(
                event.event_type,
                event.payload,
                event.stage,
                max_payload_bytes=max_payload_bytes,
                readers=readers,
            )
            check_record_times(event.created_at, event.updated_at, event.deleted_at)
        except InvalidInput as exc:
            kind = InvalidEventPayload if isinstance(exc, InvalidEventPayload) else InvalidInput
            raise kind(f"line {number}: {exc}", field=exc.field) from None
        yield number, event._replace(payload=content.payload)


def _content_key(event: RecordedEvent) -> bytes:
    return hashlib.sha256(
        orjson.dumps(
            [
                str(event.plan_id),
                event.event_type,
                event.payload,
                event.stage,
                None if event.actor_user_id is None else str(event.actor_user_id),
                event.occurred_at.isoformat(),
                event.created_at.isoformat(),
            ],
            option=orjson.OPT_SORT_KEYS,
        )
    ).digest()


def _differing(stored: RecordedEvent, incoming: RecordedEvent) -> list[str]:
    return differing_fields(
        stored,
        **{name: getattr(incoming, name) for name in (*IMMUTABLE_FIELDS, "created_at")},
    )


class _Importer:
    def __init__(
        self,
        store: EventStore,
        connection: Connection,
        create_parents: bool,
        allow_host_parents: bool = False,
    ) -> None:
        self.store = store
        self.connection = connection
        self.create_parents = create_parents
        self.allow_host_parents = allow_host_parents
        self.writable: set[str] = set()
        """Parent tables found to be stand-ins (or allowed), so rows may go in."""
        self.known_plans: set[UUID] = set()
        self.stand_ins: set[UUID] = set()
        """Plans this import created with the system user, their creator not yet seen."""
        self.known_users: set[UUID] = set()
        self.seen: dict[UUID, bytes] = {}
        self.earliest: dict[UUID, Any] = {}
        self.inserted = 0
        self.unchanged = 0
        self.users_created = 0
        self.plans_created = 0

    def chunk(self, batch: list[tuple[int, RecordedEvent]]) -> None:
        fresh: list[tuple[int, RecordedEvent]] = []
        for number, event in batch:
            key = _content_key(event)
            previous = self.seen.get(event.id)
            if previous is not None:
                if previous != key:
                    raise IdempotencyConflict_at(
                        number, IdempotencyConflict(event.id, ["content (repeated in the file)"])
                    )
                self.unchanged += 1
                continue
            self.seen[event.id] = key
            fresh.append((number, event))
        stored = {row.id: row for row in self.store_rows([event.id for _, event in fresh])}
        new: list[tuple[int, RecordedEvent]] = []
        for number, event in fresh:
            existing = stored.get(event.id)
            if existing is None:
                new.append((number, event))
                continue
            differing = _differing(existing, event)
            if differing:
                conflict = IdempotencyConflict(event.id, differing)
                raise IdempotencyConflict_at(number, conflict)
            self.unchanged += 1
        if not new:
            return
        self.check_parents(new)
        self.store.sql.bulk_insert(self.store.raw(self.connection), [event for _, event in new])
        self.inserted += len(new)
        for _, event in new:
            current = self.earliest.get(event.plan_id)
            if current is None or event.occurred_at < current:
                self.earliest[event.plan_id] = event.occurred_at

    def store_rows(self, ids: list[UUID]) -> list[RecordedEvent]:
        return list(self.store.stored(self.store.raw(self.connection), ids).values())

    def check_parents(self, new: list[tuple[int, RecordedEvent]]) -> None:
        plans: dict[UUID, tuple[int, UUID | None]] = {}
        actors: dict[UUID, int] = {}
        for number, event in new:
            if event.plan_id not in self.known_plans:
                first = plans.get(event.plan_id)
                creator = event.actor_user_id if event.event_type == "plan_created" else None
                if first is None or (first[1] is None and creator is not None):
                    plans[event.plan_id] = (first[0] if first else number, creator)
            if event.actor_user_id is not None and event.actor_user_id not in self.known_users:
                actors.setdefault(event.actor_user_id, number)
        if actors:
            present = set(
                self.connection.execute(
                    select(users.c.id).where(users.c.id.in_(list(actors)))
                ).scalars()
            )
            missing = [a for a in actors if a not in present]
            if missing and not self.create_parents:
                raise UnknownReference(
                    f"line {actors[missing[0]]}: actor_user_id {missing[0]} is not a user; "
                    "create it first, or import with --create-parents into a standalone database",
                    field="actor_user_id",
                )
            if missing:
                self.may_insert("users", actors[missing[0]], f"actor_user_id {missing[0]}")
                self.connection.execute(users.insert(), [{"id": a} for a in missing])
                self.users_created += len(missing)
            self.known_users.update(actors)
        if plans:
            present = set(
                self.connection.execute(
                    select(course_designer_plans.c.id).where(
                        course_designer_plans.c.id.in_(list(plans))
                    )
                ).scalars()
            )
            missing_plans = [p for p in plans if p not in present]
            if missing_plans and not self.create_parents:
                raise UnknownReference(
                    f"line {plans[missing_plans[0]][0]}: course_designer_plan_id "
                    f"{missing_plans[0]} is not a plan; create it first, or import with "
                    "--create-parents into a standalone database",
                    field="course_designer_plan_id",
                )
            if missing_plans:
                lacking = missing_plans[0]
                self.may_insert(
                    "course_designer_plans",
                    plans[lacking][0],
                    f"course_designer_plan_id {lacking}",
                )
                rows = []
                for plan in missing_plans:
                    creator = plans[plan][1]
                    if creator is None:
                        creator = self.system_user()
                        self.stand_ins.add(plan)
                    rows.append({"id": plan, "created_by_user_id": creator})
                self.connection.execute(course_designer_plans.insert(), rows)
                self.plans_created += len(rows)
            self.known_plans.update(plans)
        if self.stand_ins:
            # A plan first seen in an earlier chunk than its plan_created event: the
            # stand-in this import made gets its real creator (the file order, and so
            # the chunking, must not decide who created a plan).
            for _, event in new:
                if (
                    event.plan_id in self.stand_ins
                    and event.event_type == "plan_created"
                    and event.actor_user_id is not None
                ):
                    self.connection.execute(
                        update(course_designer_plans)
                        .where(course_designer_plans.c.id == event.plan_id)
                        .values(created_by_user_id=event.actor_user_id)
                    )
                    self.stand_ins.discard(event.plan_id)

    def may_insert(self, table: str, line: int, what: str) -> None:
        """Refuse to write parent rows into a host's ``table`` (unless allowed).

        Raises:
            HostParentsRefused: ``table`` is not a stand-in of eventsource migrate.
        """
        if table in self.writable:
            return
        if not self.allow_host_parents:
            raw = self.store.raw(self.connection)
            note = raw.execute(self.store.sql.table_note, {"table": table}).fetchone()
            if note is None or not isinstance(note[0], str) or STAND_IN_MARK not in note[0]:
                field = "actor_user_id" if table == "users" else "course_designer_plan_id"
                raise HostParentsRefused(
                    f"line {line}: {what} does not exist, and --create-parents inserts only "
                    f"into the stand-in tables eventsource migrate creates: {table} here is "
                    "the host service's own table (it has no stand-in mark); create the row "
                    "in the host, or pass --allow-host-parents to insert a minimal row anyway",
                    table=table,
                    field=field,
                )
        self.writable.add(table)

    def system_user(self) -> UUID:
        """The creator recorded for a stand-in plan whose creation was not evented."""
        user = uuid5(SYSTEM_USER_NAMESPACE, "eventsource-import")
        if user not in self.known_users:
            exists = self.connection.execute(
                select(func.count()).select_from(users).where(users.c.id == user)
            ).scalar_one()
            if not exists:
                self.may_insert("users", 0, f"the import's system user {user}")
                self.connection.execute(users.insert().values(id=user))
                self.users_created += 1
            self.known_users.add(user)
        return user


def IdempotencyConflict_at(number: int, conflict: IdempotencyConflict) -> IdempotencyConflict:
    error = IdempotencyConflict(conflict.event_id, conflict.fields)
    error.args = (f"line {number}: {conflict}",)
    return error


def import_events(
    store: EventStore,
    lines: Iterable[bytes | str],
    *,
    create_parents: bool = False,
    allow_host_parents: bool = False,
    validate_payloads: bool | None = None,
    progress: Progress | None = None,
    phase: Phase | None = None,
) -> ImportResult:
    """Import JSONL lines in one transaction (all or nothing).

    ``lines`` are consumed once, in order, as they come (a pipe is fine).
    ``progress`` hears of lines as they are stored; ``phase`` of the work after
    the last line: recording each changed plan, then the commit.

    Args:
        create_parents: insert minimal users and plans the file names and the
            database lacks, into the stand-in tables of a standalone database.
        allow_host_parents: with ``create_parents``, insert them even into parent
            tables that are not the library's stand-ins (a host's).
        validate_payloads: check payloads against the projections' payload models
            (default: the store's ``validate_payloads``).

    Raises:
        InvalidInput: a bad line (the message names its number and field).
        InvalidEventPayload: a payload a projection's model refuses (naming the line).
        UnknownReference: a plan or actor that does not exist, without
            ``create_parents``.
        HostParentsRefused: ``create_parents`` would write into a host's table.
        IdempotencyConflict: an id already stored (or repeated) with other content.
    """
    read = 0
    with store.write_transaction() as connection:
        now = store.sql.lock_table(store.raw(connection)).astimezone(UTC)
        importer = _Importer(store, connection, create_parents, allow_host_parents)
        batch: list[tuple[int, RecordedEvent]] = []
        readers = store.payload_readers(validate_payloads)
        for item in parse_lines(lines, max_payload_bytes=store.max_payload_bytes, readers=readers):
            batch.append(item)
            if len(batch) >= CHUNK:
                importer.chunk(batch)
                read += len(batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
        if batch:
            importer.chunk(batch)
            read += len(batch)
            if progress is not None:
                progress(len(batch))
        recorded = None if phase is None else phase("recording changes", len(importer.earliest))
        for plan_id in sorted(importer.earliest):
            store.after_write(
                connection, WriteNotice(plan_id, "import", importer.earliest[plan_id]), now
            )
            if recorded is not None:
                recorded(1)
        if phase is not None:
            phase("committing", None)
    return ImportResult(
        read=read,
        inserted=importer.inserted,
        unchanged=importer.unchanged,
        plans=len(importer.earliest),
        users_created=importer.users_created,
        plans_created=importer.plans_created,
    )


def import_file(
    store: EventStore,
    path: str,
    *,
    create_parents: bool = False,
    allow_host_parents: bool = False,
    validate_payloads: bool | None = None,
    progress: Progress | None = None,
    phase: Phase | None = None,
) -> ImportResult:
    """Import a JSONL file, read once as it streams (``-`` is stdin; pipes are fine).

    Raises:
        UnusableFile: the file cannot be opened or read (the system's reason).
        InvalidInput, UnknownReference, IdempotencyConflict: as :func:`import_events`.
    """
    with open_source(path) as source:
        return import_events(
            store,
            source_lines(source),
            create_parents=create_parents,
            allow_host_parents=allow_host_parents,
            validate_payloads=validate_payloads,
            progress=progress,
            phase=phase,
        )


@dataclass(frozen=True, slots=True)
class Source:
    """An import's input, open for reading in binary."""

    stream: BinaryIO
    label: str
    """What to call it: the path, or ``stdin``."""
    size: int | None
    """Bytes to read, for a regular file; None for a pipe, a terminal, a socket."""


@contextmanager
def open_source(path: str) -> Iterator[Source]:
    """Open ``path`` (``-``: stdin) for one streaming read.

    Raises:
        UnusableFile: missing, a directory, unreadable (naming the system's reason).
    """
    if path == STDIN:
        stream = sys.stdin.buffer
        yield Source(stream, "stdin", _regular_size(stream))
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below, after the import)
    except OSError as exc:
        raise UnusableFile(describe_os_error(exc, "cannot read"), path=path) from exc
    with handle:
        yield Source(handle, path, _regular_size(handle))


def _regular_size(stream: BinaryIO) -> int | None:
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return found.st_size if stat.S_ISREG(found.st_mode) else None


def source_lines(source: Source, advance: Progress | None = None) -> Iterator[bytes]:
    """The lines of ``source`` as they arrive; ``advance`` hears of the bytes read.

    Raises:
        UnusableFile: reading failed (an I/O error, a directory given as stdin).
    """
    iterator = iter(source.stream)
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except OSError as exc:
            if exc.filename is None and source.label != "stdin":
                exc.filename = source.label
            raise UnusableFile(
                describe_os_error(exc, "cannot read" if exc.filename else "cannot read stdin"),
                path=None if source.label == "stdin" else source.label,
            ) from exc
        if advance is not None:
            advance(len(line))
        yield line


def export_rows(
    store: EventStore,
    plan_ids: Iterable[UUID] | None = None,
    *,
    progress: Progress | None = None,
) -> Iterator[RecordedEvent]:
    """Every row (deleted ones included), plan by plan, each plan in stream order."""
    for plan_id in plan_ids if plan_ids is not None else store.plan_ids():
        yield from store.export_rows(plan_id)
        if progress is not None:
            progress(1)


def export_file(
    store: EventStore,
    out: IO[str],
    plan_ids: Iterable[UUID] | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Write the export to ``out``; returns the number of rows written."""
    count = 0
    for event in export_rows(store, plan_ids, progress=progress):
        out.write(dumps_row(event_to_row(event)))
        out.write("\n")
        count += 1
    return count
