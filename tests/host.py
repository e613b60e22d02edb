"""A host database beside the library: the upstream service's schema and its writes.

``host_database()`` makes a fresh PostgreSQL database holding what the upstream
service's migrations create for the course designer (``tests/host_schema.sql``).
:class:`Upstream` writes plans the way the service does, statement for statement
in shape: each write is one transaction that locks the plan row (joined with the
caller's membership) ``FOR UPDATE``, updates the plan and stage rows, and inserts
the event with only plan, actor, type, stage and payload (``occurred_at`` and
``created_at`` default to ``now()``, the transaction's start). Stage times are the
app server's clock (``datetime.now``), read after the lock, as the service reads
``Utc::now()``.

``library_role()`` makes a login role that owns nothing in the database and may
create objects in its schema: the role a deployment runs ``eventsource migrate``
as, beside a host that owns its own tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from projections.course_designer import add_months
from tests.test_schema import fresh_pg_database, libpq_url

HOST_SCHEMA: Final = Path(__file__).with_name("host_schema.sql")
STAGES: Final = ("analysis", "design", "development", "implementation", "evaluation")
SUGGESTED_MONTHS: Final = {"small": (1, 1, 2, 1, 1), "medium": (1, 2, 3, 2, 1)}


@contextmanager
def host_database() -> Iterator[str]:
    """A fresh database with the host's schema (its SQLAlchemy URL), dropped afterwards."""
    with fresh_pg_database("eventsource_hostdb") as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(HOST_SCHEMA.read_bytes())
        yield url


def as_user(url: str, user: str) -> str:
    """``url`` logging in as ``user`` (the test server trusts local logins)."""
    return make_url(url).set(username=user, password=None).render_as_string(hide_password=False)


@contextmanager
def library_role(url: str) -> Iterator[str]:
    """A role owning nothing, allowed to create objects in ``public``: its login URL.

    Dropped afterwards with everything it came to own.
    """
    with login_role(url, "eventsource_lib", ["GRANT USAGE, CREATE ON SCHEMA public TO {}"]) as role:
        yield role


@contextmanager
def login_role(url: str, prefix: str, grants: Sequence[str]) -> Iterator[str]:
    """A new login role in ``url``'s database with ``grants`` (``{}`` is the role): its
    login URL. Dropped afterwards with everything it came to own."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(url)
    database = make_url(url).database or ""
    role = sql.Identifier(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role)
        )
        for grant in grants:
            conn.execute(sql.SQL(grant).format(role))
    try:
        yield as_user(url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        server = libpq_url(make_url(url).set(database="postgres").render_as_string(False))
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


def grant_runtime(url: str, role: str) -> None:
    """What a host grants the library's role to append, fold and audit beside it.

    ``UPDATE (updated_at)`` on the plans is what PostgreSQL asks for before it
    lets a role lock a plan row ``FOR UPDATE``.
    """
    name = sql.Identifier(make_url(role).username or "")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE (deleted_at) ON course_designer_plan_events TO {}"
            ).format(name)
        )
        conn.execute(
            sql.SQL(
                "GRANT SELECT ON users, course_designer_plans, course_designer_plan_stages TO {}"
            ).format(name)
        )
        conn.execute(
            sql.SQL("GRANT UPDATE (updated_at) ON course_designer_plans TO {}").format(name)
        )


def stamp(value: datetime) -> str:
    """A timestamp as the service's JSON writes it (RFC 3339, ``Z``, microseconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def payload_stage(stage: str) -> str:
    return stage.capitalize()


def suggested(start: date, size: str = "small") -> list[tuple[str, date, date]]:
    """A suggested schedule: the first of the month, whole months per stage."""
    current = start.replace(day=1)
    out = []
    for stage, months in zip(STAGES, SUGGESTED_MONTHS[size], strict=True):
        following = add_months(current, months)
        out.append((stage, current, following - timedelta(days=1)))
        current = following
    return out


@dataclass(frozen=True)
class HostPlan:
    plan_id: uuid.UUID
    owner: uuid.UUID


LOCK_PLAN: Final = """
SELECT p.id, p.created_at, p.updated_at, p.created_by_user_id, p.name, p.status,
       p.active_stage, p.last_weekly_stage_email_sent_at
FROM course_designer_plans p
JOIN course_designer_plan_members m
  ON m.course_designer_plan_id = p.id
  AND m.user_id = %(user)s
  AND m.deleted_at IS NULL
WHERE p.id = %(plan)s
  AND p.deleted_at IS NULL
FOR UPDATE
"""

INSERT_EVENT: Final = """
INSERT INTO course_designer_plan_events (
  course_designer_plan_id, actor_user_id, event_type, stage, payload
)
VALUES (%(plan)s, %(actor)s, %(type)s, %(stage)s, %(payload)s)
"""

STAGE_ROWS: Final = """
SELECT id, created_at, updated_at, stage, status, planned_starts_on, planned_ends_on,
       actual_started_at, actual_completed_at, workspace_data
FROM course_designer_plan_stages
WHERE course_designer_plan_id = %(plan)s AND deleted_at IS NULL
ORDER BY array_position(ARRAY['analysis','design','development','implementation','evaluation']
                        ::course_designer_stage[], stage), id
"""


class PreconditionFailed(Exception):
    """The service refused the request (its transaction rolled back, nothing written)."""


class Upstream:
    """The service's writes, each its own transaction, on connections to ``url``."""

    def __init__(self, url: str) -> None:
        self.conninfo = libpq_url(url)
        self.conn = self.connect()

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    # -- plumbing ---------------------------------------------------------------

    @staticmethod
    def event(
        conn: psycopg.Connection[Any],
        plan: uuid.UUID,
        actor: uuid.UUID | None,
        event_type: str,
        stage: str | None,
        payload: Any,
    ) -> None:
        conn.execute(
            INSERT_EVENT,
            {
                "plan": plan,
                "actor": actor,
                "type": event_type,
                "stage": stage,
                "payload": Jsonb(payload, dumps=lambda o: orjson.dumps(o).decode()),
            },
        )

    @staticmethod
    def lock(conn: psycopg.Connection[Any], plan: HostPlan, user: uuid.UUID) -> dict[str, Any]:
        cursor = conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": user})
        row = cursor.fetchone()
        if row is None:
            raise PreconditionFailed("plan not found or user is not a member")
        assert cursor.description is not None
        return dict(zip([c.name for c in cursor.description], row, strict=True))

    # -- the service's operations ---------------------------------------------

    def create_user(self) -> uuid.UUID:
        user = uuid.uuid4()
        self.conn.execute(
            "INSERT INTO users (id, email) VALUES (%s, %s)", (user, f"{user.hex}@example.org")
        )
        return user

    def create_plan(self, user: uuid.UUID, name: str | None) -> HostPlan:
        with self.conn.transaction():
            (plan_id,) = self.conn.execute(
                "INSERT INTO course_designer_plans (created_by_user_id, name) VALUES (%s, %s)"
                " RETURNING id",
                (user, name),
            ).fetchone() or (None,)
            assert plan_id is not None
            self.conn.execute(
                "INSERT INTO course_designer_plan_members (course_designer_plan_id, user_id)"
                " VALUES (%s, %s)",
                (plan_id, user),
            )
            self.event(self.conn, plan_id, user, "plan_created", None, {"name": name})
        return HostPlan(plan_id, user)

    def add_member(self, plan: HostPlan, user: uuid.UUID) -> None:
        self.conn.execute(
            "INSERT INTO course_designer_plan_members (course_designer_plan_id, user_id)"
            " VALUES (%s, %s)",
            (plan.plan_id, user),
        )

    def save_schedule(
        self,
        plan: HostPlan,
        user: uuid.UUID,
        name: str | None,
        stages: Sequence[tuple[str, date, date]],
    ) -> None:
        with self.conn.transaction():
            locked = self.lock(self.conn, plan, user)
            if locked["status"] in ("in_progress", "completed", "archived"):
                raise PreconditionFailed("the plan has started or is closed")
            (existing,) = self.conn.execute(
                "SELECT count(*) FROM course_designer_plan_stages"
                " WHERE course_designer_plan_id = %s AND deleted_at IS NULL",
                (plan.plan_id,),
            ).fetchone() or (0,)
            (saved_name,) = self.conn.execute(
                "UPDATE course_designer_plans SET name = %s, status = 'scheduling'"
                " WHERE id = %s AND deleted_at IS NULL RETURNING name",
                (name, plan.plan_id),
            ).fetchone() or (None,)
            for stage, starts, ends in stages:
                self.conn.execute(
                    "INSERT INTO course_designer_plan_stages"
                    " (course_designer_plan_id, stage, planned_starts_on, planned_ends_on)"
                    " VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT ON CONSTRAINT course_designer_plan_stages_plan_stage_unique"
                    " DO UPDATE SET planned_starts_on = EXCLUDED.planned_starts_on,"
                    " planned_ends_on = EXCLUDED.planned_ends_on",
                    (plan.plan_id, stage, starts, ends),
                )
            self.event(
                self.conn,
                plan.plan_id,
                user,
                "schedule_created" if existing == 0 else "schedule_updated",
                None,
                {
                    "name": saved_name,
                    "stages": [
                        {
                            "stage": payload_stage(stage),
                            "planned_starts_on": starts.isoformat(),
                            "planned_ends_on": ends.isoformat(),
                        }
                        for stage, starts, ends in stages
                    ],
                },
            )

    def finalize(self, plan: HostPlan, user: uuid.UUID) -> datetime:
        """The newer service's finalize: the plan starts at once, analysis active."""
        with self.conn.transaction():
            locked = self.lock(self.conn, plan, user)
            if locked["status"] in ("in_progress", "completed", "archived"):
                raise PreconditionFailed("the plan has started or is closed")
            now = datetime.now(UTC)
            self.conn.execute(
                "UPDATE course_designer_plans SET status = 'in_progress', active_stage = 'analysis'"
                " WHERE id = %s AND deleted_at IS NULL",
                (plan.plan_id,),
            )
            self.conn.execute(
                "UPDATE course_designer_plan_stages SET status = 'in_progress',"
                " actual_started_at = %s"
                " WHERE course_designer_plan_id = %s AND stage = 'analysis' AND deleted_at IS NULL",
                (now, plan.plan_id),
            )
            cursor = self.conn.execute(STAGE_ROWS, {"plan": plan.plan_id})
            assert cursor.description is not None
            names = [c.name for c in cursor.description]
            snapshot = []
            for row in cursor.fetchall():
                record = dict(zip(names, row, strict=True))
                snapshot.append(
                    {
                        "id": str(record["id"]),
                        "created_at": stamp(record["created_at"]),
                        "updated_at": stamp(record["updated_at"]),
                        "stage": payload_stage(record["stage"]),
                        "status": "".join(p.capitalize() for p in record["status"].split("_")),
                        "planned_starts_on": record["planned_starts_on"].isoformat(),
                        "planned_ends_on": record["planned_ends_on"].isoformat(),
                        "actual_started_at": None
                        if record["actual_started_at"] is None
                        else stamp(record["actual_started_at"]),
                        "actual_completed_at": None
                        if record["actual_completed_at"] is None
                        else stamp(record["actual_completed_at"]),
                        "workspace_data": record["workspace_data"],
                    }
                )
            self.event(
                self.conn,
                plan.plan_id,
                user,
                "schedule_finalized",
                "analysis",
                {"stages": snapshot, "active_stage": "Analysis", "activated_at": stamp(now)},
            )
        return now

    def advance_in(self, conn: psycopg.Connection[Any], plan: HostPlan, user: uuid.UUID) -> str:
        """Complete the active stage and start the next (or complete the plan), inside
        the caller's transaction on ``conn``; returns the stage completed."""
        locked = self.lock(conn, plan, user)
        if locked["status"] != "in_progress" or locked["active_stage"] is None:
            raise PreconditionFailed("the plan must be in progress to advance")
        current: str = locked["active_stage"]
        now = datetime.now(UTC)
        conn.execute(
            "UPDATE course_designer_plan_stages SET status = 'completed', actual_completed_at = %s"
            " WHERE course_designer_plan_id = %s AND stage = %s AND deleted_at IS NULL",
            (now, plan.plan_id, current),
        )
        self.event(conn, plan.plan_id, user, "stage_completed", current, {})
        index = STAGES.index(current)
        if index + 1 < len(STAGES):
            following = STAGES[index + 1]
            conn.execute(
                "UPDATE course_designer_plans SET active_stage = %s"
                " WHERE id = %s AND deleted_at IS NULL",
                (following, plan.plan_id),
            )
            conn.execute(
                "UPDATE course_designer_plan_stages SET status = 'in_progress',"
                " actual_started_at = %s"
                " WHERE course_designer_plan_id = %s AND stage = %s AND deleted_at IS NULL",
                (now, plan.plan_id, following),
            )
            self.event(conn, plan.plan_id, user, "stage_started", following, {})
        else:
            conn.execute(
                "UPDATE course_designer_plans SET status = 'completed', active_stage = NULL"
                " WHERE id = %s AND deleted_at IS NULL",
                (plan.plan_id,),
            )
            self.event(conn, plan.plan_id, user, "plan_completed", None, {})
        return current

    def advance(self, plan: HostPlan, user: uuid.UUID) -> str:
        with self.conn.transaction():
            return self.advance_in(self.conn, plan, user)

    def extend(self, plan: HostPlan, user: uuid.UUID, stage: str, months: int) -> date:
        with self.conn.transaction():
            locked = self.lock(self.conn, plan, user)
            if locked["status"] != "in_progress" or locked["active_stage"] != stage:
                raise PreconditionFailed("only the active stage of a started plan extends")
            rows = self.conn.execute(
                "SELECT id, stage, planned_starts_on, planned_ends_on"
                " FROM course_designer_plan_stages"
                " WHERE course_designer_plan_id = %s AND deleted_at IS NULL",
                (plan.plan_id,),
            ).fetchall()
            by_stage = {row[1]: row for row in rows}
            stage_id, _, _, ends = by_stage[stage]
            new_ends = add_months(ends, months)
            self.conn.execute(
                "UPDATE course_designer_plan_stages SET planned_ends_on = %s"
                " WHERE id = %s AND deleted_at IS NULL",
                (new_ends, stage_id),
            )
            previous = new_ends
            for later in STAGES[STAGES.index(stage) + 1 :]:
                later_id, _, starts, later_ends = by_stage[later]
                shifted = previous + timedelta(days=1)
                previous = shifted + (later_ends - starts)
                self.conn.execute(
                    "UPDATE course_designer_plan_stages"
                    " SET planned_starts_on = %s, planned_ends_on = %s"
                    " WHERE id = %s AND deleted_at IS NULL",
                    (shifted, previous, later_id),
                )
            self.event(
                self.conn,
                plan.plan_id,
                user,
                "stage_extended",
                stage,
                {"stage_id": str(stage_id), "months": months, "new_ends_on": new_ends.isoformat()},
            )
        return new_ends


def five_lifecycles(upstream: Upstream) -> list[HostPlan]:
    """Five plans written as the service writes them, ending in every workflow state
    a newer service reaches: draft, scheduling, in progress (twice) and completed."""
    plans = []
    owner = upstream.create_user()
    draft = upstream.create_plan(owner, "Draft only")
    plans.append(draft)

    scheduling = upstream.create_plan(owner, "Still scheduling")
    upstream.save_schedule(scheduling, owner, "Still scheduling", suggested(date(2026, 1, 15)))
    upstream.save_schedule(scheduling, owner, None, suggested(date(2026, 2, 1), "medium"))
    plans.append(scheduling)

    started = upstream.create_plan(owner, "Started")
    upstream.save_schedule(started, owner, "Started", suggested(date(2026, 3, 1)))
    upstream.finalize(started, owner)
    upstream.extend(started, owner, "analysis", 1)
    plans.append(started)

    member = upstream.create_user()
    midway = upstream.create_plan(owner, "Midway")
    upstream.add_member(midway, member)
    upstream.save_schedule(midway, owner, "Midway", suggested(date(2026, 4, 1), "medium"))
    upstream.finalize(midway, member)
    upstream.advance(midway, owner)
    upstream.extend(midway, member, "design", 2)
    upstream.advance(midway, member)
    plans.append(midway)

    done = upstream.create_plan(owner, "Done")
    upstream.save_schedule(done, owner, "Done", suggested(date(2026, 5, 1)))
    upstream.finalize(done, owner)
    for _ in STAGES:
        upstream.advance(done, owner)
    plans.append(done)
    return plans


__all__ = [
    "STAGES",
    "HostPlan",
    "PreconditionFailed",
    "Upstream",
    "as_user",
    "five_lifecycles",
    "grant_runtime",
    "host_database",
    "library_role",
    "login_role",
    "stamp",
    "suggested",
]
