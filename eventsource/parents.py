"""Parent rows for standalone databases: the ``users`` and ``course_designer_plans``
stand-ins.

Every event names a plan (``course_designer_plan_id``) and usually an actor
(``actor_user_id``), and both are foreign keys. In the host service those rows are
the service's own. In a standalone database (the SQLite default, or a PostgreSQL
that ``eventsource migrate`` set up from nothing) the migrations create minimal
stand-ins, and these functions add rows to them:

* ``users (id uuid PRIMARY KEY)``
* ``course_designer_plans (id uuid PRIMARY KEY, created_by_user_id uuid NOT NULL
  REFERENCES users (id))``

Cold path, one small transaction each. On a host database the real tables have
more required columns: create the rows through the service there, not with these.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import select

from .backend import with_retries
from .errors import UnknownReference
from .streams import StreamStore, as_uuid
from .tables import course_designer_plans, users


def create_user(store: StreamStore, user_id: UUID | str | None = None) -> UUID:
    """Add a user to the standalone ``users`` table; return its id.

    Args:
        user_id: the id to use (default: a new random one). Already present: nothing
            is written, the id is returned.

    Raises:
        InvalidInput: ``user_id`` is not a UUID, or the table requires more columns
            (a host's table: create users through the service).
        SchemaMissing: the database was never migrated.
    """
    ident = uuid4() if user_id is None else as_uuid(user_id, "user_id")

    def insert() -> None:
        with store.write_transaction() as connection:
            found = connection.execute(select(users.c.id).where(users.c.id == ident)).first()
            if found is None:
                connection.execute(users.insert().values(id=ident))

    with_retries(insert)
    return ident


def create_plan(
    store: StreamStore, plan_id: UUID | str | None = None, *, created_by_user_id: UUID | str
) -> UUID:
    """Add a plan to the standalone ``course_designer_plans`` table; return its id.

    Args:
        plan_id: the id to use (default: a new random one). Already present: nothing
            is written, the id is returned.
        created_by_user_id: the plan's creator, an existing user (:func:`create_user`).

    Raises:
        InvalidInput: an id is not a UUID, or the table requires more columns.
        UnknownReference: ``created_by_user_id`` is not a user.
        SchemaMissing: the database was never migrated.
    """
    ident = uuid4() if plan_id is None else as_uuid(plan_id, "plan_id")
    creator = as_uuid(created_by_user_id, "created_by_user_id")

    def insert() -> None:
        with store.write_transaction() as connection:
            found = connection.execute(
                select(course_designer_plans.c.id).where(course_designer_plans.c.id == ident)
            ).first()
            if found is not None:
                return
            known = connection.execute(select(users.c.id).where(users.c.id == creator)).first()
            if known is None:
                raise UnknownReference(
                    f"created_by_user_id {creator} is not a user; create it first "
                    "(eventsource.create_user)",
                    field="created_by_user_id",
                )
            connection.execute(
                course_designer_plans.insert().values(id=ident, created_by_user_id=creator)
            )

    with_retries(insert)
    return ident


__all__ = ["create_plan", "create_user"]
