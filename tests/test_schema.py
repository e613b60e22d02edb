"""The schema test: the migrated catalog against the tbls spec, row by row.

``tests/data/course_designer_plan_events.tbls.txt`` is a copy of the spec (the text
export of tbls' document). It is parsed at test time, and every row of it is
compared with what PostgreSQL's catalog says about a freshly migrated database:
the table comment, each column (type as tbls prints it, default, nullability,
related tables, comment), each constraint, index and trigger definition, and that
nothing exists beyond the spec. The SQLite equivalent is checked for the same
columns and the same rules, by behaviour.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from eventsource import migrate
from eventsource.config import make_engine
from tests.conftest import require_postgres

SPEC_PATH: Final = Path(__file__).parent / "data" / "course_designer_plan_events.tbls.txt"
TABLE: Final = "course_designer_plan_events"
STAGES: Final = ("analysis", "design", "development", "implementation", "evaluation")

# -- the spec ----------------------------------------------------------------------

SECTIONS: Final = (
    "Index",
    "Description",
    "Columns",
    "Constraints",
    "Indexes",
    "Triggers",
    "Relations",
)
HEADERS: Final = {
    "Columns": "Name Type Default Nullable Children Parents Comment",
    "Constraints": "Name Type Definition",
    "Indexes": "Name Definition",
    "Triggers": "Name Definition",
}
# tbls prints a column's type as format_type() does, with "character varying"
# shortened to "varchar". The multi-word ones have to be recognized as one cell.
TYPE_PATTERN: Final = re.compile(
    r"(?:timestamp|time)(?:\(\d+\))? with(?:out)? time zone(?:\[\])*"
    r"|double precision(?:\[\])*"
    r"|bit varying(?:\(\d+\))?(?:\[\])*"
    r"|\S+"
)
TABLE_NAME: Final = re.compile(r"[A-Za-z_][\w$]*\.[A-Za-z_][\w$]*")
# tbls' names for pg_constraint.contype; others (n, x, ...) print as the letter.
CONSTRAINT_TYPES: Final[dict[str, str]] = {
    "p": "PRIMARY KEY",
    "u": "UNIQUE",
    "f": "FOREIGN KEY",
    "c": "CHECK",
    "t": "TRIGGER",
}
SPEC_CONSTRAINT_TYPE: Final = re.compile(
    r"(?P<type>PRIMARY KEY|FOREIGN KEY|UNIQUE|CHECK|TRIGGER|[a-z]) (?P<definition>.+)"
)


@dataclass(frozen=True)
class SpecColumn:
    name: str
    type: str
    default: str | None
    nullable: bool
    related: tuple[str, ...]  # the Children then the Parents cells (tables)
    comment: str


@dataclass(frozen=True)
class SpecConstraint:
    name: str
    type: str
    definition: str


@dataclass(frozen=True)
class Spec:
    table: str
    description: str
    columns: dict[str, SpecColumn]
    constraints: dict[str, SpecConstraint]
    indexes: dict[str, str]
    triggers: dict[str, str]


def normalize_quotes(value: str) -> str:
    """The spec was exported through a typographer: ``‘{}’::jsonb`` and ``’’::text``
    stand for PostgreSQL's ``'{}'::jsonb`` and ``''::text``. Map the typographic
    quotes back to the ASCII ones the catalog prints."""
    return (
        value.replace("\u2018", "'")
        .replace("\u2019", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )


def split_sections(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line in SECTIONS and line not in sections:
            current = sections[line] = []
        elif line and current is not None:
            current.append(line)
    return sections


def table_rows(sections: dict[str, list[str]], section: str) -> list[str]:
    rows = sections.get(section, [])
    assert rows[:1] == [HEADERS[section]], (
        f"spec section {section!r}: expected the header {HEADERS[section]!r}, got {rows[:1]}"
    )
    return rows[1:]


def parse_column(line: str) -> SpecColumn:
    """One Columns row. Empty cells leave no trace in the text export, so the row
    is read by shape: name, type, the default (whatever precedes the Nullable
    cell), Nullable, then the Children/Parents tables, then the comment."""
    name, _, rest = line.partition(" ")
    match = TYPE_PATTERN.match(rest)
    assert match, f"spec Columns row {name!r}: no type in {line!r}"
    column_type = match.group(0)
    tokens = rest[match.end() :].split()
    flags = [i for i, token in enumerate(tokens) if token in ("true", "false")]
    assert flags, f"spec Columns row {name!r}: no Nullable cell (true/false) in {line!r}"
    at = flags[0]
    # A default that is itself true/false (a boolean column) is followed by Nullable.
    if at + 1 < len(tokens) and tokens[at + 1] in ("true", "false"):
        at += 1
    default = " ".join(tokens[:at]) or None
    nullable = tokens[at] == "true"
    rest_tokens = tokens[at + 1 :]
    related: list[str] = []
    while rest_tokens and TABLE_NAME.fullmatch(rest_tokens[0]):
        related.append(rest_tokens.pop(0))
    return SpecColumn(name, column_type, default, nullable, tuple(related), " ".join(rest_tokens))


def parse_constraint(line: str) -> SpecConstraint:
    name, _, rest = line.partition(" ")
    match = SPEC_CONSTRAINT_TYPE.fullmatch(rest)
    assert match, f"spec Constraints row {name!r}: cannot read type and definition in {line!r}"
    return SpecConstraint(name, match["type"], match["definition"])


def parse_name_definition(line: str) -> tuple[str, str]:
    name, _, definition = line.partition(" ")
    return name, definition


def parse_spec(path: Path = SPEC_PATH) -> Spec:
    lines = [normalize_quotes(line.strip()) for line in path.read_text("utf-8").splitlines()]
    sections = split_sections(lines)
    table = sections["Index"][0]
    description = " ".join(sections["Description"])
    columns = [parse_column(row) for row in table_rows(sections, "Columns")]
    constraints = [parse_constraint(row) for row in table_rows(sections, "Constraints")]
    indexes = [parse_name_definition(row) for row in table_rows(sections, "Indexes")]
    triggers = [parse_name_definition(row) for row in table_rows(sections, "Triggers")]
    spec = Spec(
        table=table,
        description=description,
        columns={c.name: c for c in columns},
        constraints={c.name: c for c in constraints},
        indexes=dict(indexes),
        triggers=dict(triggers),
    )
    for kind, parsed, rows in (
        ("column", spec.columns, columns),
        ("constraint", spec.constraints, constraints),
        ("index", spec.indexes, indexes),
        ("trigger", spec.triggers, triggers),
    ):
        assert len(parsed) == len(rows), f"the spec names a {kind} twice"
    return spec


# -- the catalog -------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a libpq URI for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_pg_database(prefix: str = "eventsource_schema") -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards.

    A whole database rather than a schema so that names print as the spec has
    them (``public.course_designer_plan_events``, ``REFERENCES users(id)``).
    """
    base = require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = libpq_url(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def migrate_url(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


# The columns as tbls reads them (drivers/postgres: queryForColumns).
COLUMNS_QUERY: Final = """
SELECT
    attr.attname,
    CASE
        WHEN 'character varying'::regtype = ANY(ARRAY[attr.atttypid, tp.typelem]) THEN
            REPLACE(format_type(attr.atttypid, attr.atttypmod), 'character varying', 'varchar')
        ELSE format_type(attr.atttypid, attr.atttypmod)
    END,
    pg_get_expr(def.adbin, def.adrelid),
    NOT (attr.attnotnull OR tp.typtype = 'd' AND tp.typnotnull),
    descr.description
FROM pg_attribute AS attr
JOIN pg_type AS tp ON attr.atttypid = tp.oid
LEFT JOIN pg_attrdef AS def ON attr.attrelid = def.adrelid AND attr.attnum = def.adnum
LEFT JOIN pg_description AS descr
    ON descr.classoid = 'pg_class'::regclass
   AND attr.attrelid = descr.objoid AND attr.attnum = descr.objsubid
WHERE attr.attnum > 0 AND NOT attr.attisdropped AND attr.attrelid = %(oid)s
ORDER BY attr.attnum
"""
# Per column, the tables of the foreign keys it belongs to: referencing it
# (tbls' Children) and referenced by it (tbls' Parents).
RELATIONS_QUERY: Final = """
SELECT a.attname, 'child', n.nspname || '.' || c.relname
FROM pg_constraint AS con
JOIN pg_attribute AS a ON a.attrelid = con.confrelid AND a.attnum = ANY(con.confkey)
JOIN pg_class AS c ON c.oid = con.conrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND con.confrelid = %(oid)s
UNION ALL
SELECT a.attname, 'parent', n.nspname || '.' || c.relname
FROM pg_constraint AS con
JOIN pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = ANY(con.conkey)
JOIN pg_class AS c ON c.oid = con.confrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND con.conrelid = %(oid)s
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class Catalog:
    table: str
    description: str | None
    columns: dict[str, SpecColumn]
    constraints: dict[str, SpecConstraint]
    indexes: dict[str, str]
    triggers: dict[str, str]
    server_version: int


def read_catalog(conninfo: str, table: str = TABLE) -> Catalog:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        shown = conn.execute("SHOW server_version_num").fetchone()
        assert shown is not None
        version = int(shown[0])
        found = conn.execute(
            "SELECT c.oid, n.nspname || '.' || c.relname, obj_description(c.oid, 'pg_class')"
            " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass(%s)",
            (table,),
        ).fetchone()
        assert found is not None, f"table {table} does not exist"
        oid, qualified, description = found
        arg = {"oid": oid}
        related: dict[str, list[str]] = {}
        for column, _kind, other in conn.execute(RELATIONS_QUERY, arg):
            # Ordered children first, then parents: the order of the cells in a row.
            related.setdefault(column, []).append(other)
        columns = {
            name: SpecColumn(
                name,
                column_type,
                default,
                nullable,
                tuple(related.get(name, ())),
                comment or "",
            )
            for name, column_type, default, nullable, comment in conn.execute(COLUMNS_QUERY, arg)
        }
        constraints = {
            name: SpecConstraint(name, CONSTRAINT_TYPES.get(contype) or contype, definition)
            for name, contype, definition in conn.execute(
                "SELECT conname, contype::text, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE conrelid = %(oid)s",
                arg,
            )
        }
        if version < 180000:
            # Before PostgreSQL 18 a NOT NULL is only pg_attribute.attnotnull; from 18
            # on it is also a pg_constraint row (contype 'n'), named as below and shown
            # as ``NOT NULL column``. Synthesize those rows so one comparison covers both.
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %(oid)s"
                " AND attnum > 0 AND NOT attisdropped AND attnotnull",
                arg,
            ):
                constraint = f"{table}_{name}_not_null"
                constraints[constraint] = SpecConstraint(constraint, "n", f"NOT NULL {name}")
        indexes: dict[str, str] = dict(
            conn.execute(
                "SELECT cls.relname, pg_get_indexdef(idx.indexrelid) FROM pg_index AS idx"
                " JOIN pg_class AS cls ON cls.oid = idx.indexrelid WHERE idx.indrelid = %(oid)s",
                arg,
            ).fetchall()
        )
        triggers: dict[str, str] = dict(
            conn.execute(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE tgrelid = %(oid)s AND NOT tgisinternal",
                arg,
            ).fetchall()
        )
    return Catalog(qualified, description, columns, constraints, indexes, triggers, version)


def compare_rows(
    section: str, spec: dict[str, Any], catalog: dict[str, Any], fields: tuple[str, ...]
) -> list[str]:
    """What differs, one line per differing field, naming the section and the row."""
    differences: list[str] = []
    for name in sorted(spec.keys() - catalog.keys()):
        differences.append(f"{section} row {name!r}: in the spec, missing from the database")
    for name in sorted(catalog.keys() - spec.keys()):
        differences.append(
            f"{section} row {name!r}: in the database, not in the spec: {catalog[name]!r}"
        )
    for name in sorted(spec.keys() & catalog.keys()):
        for field in fields:
            expected = getattr(spec[name], field) if field else spec[name]
            actual = getattr(catalog[name], field) if field else catalog[name]
            if expected != actual:
                label = f" {field}" if field else ""
                differences.append(
                    f"{section} row {name!r}{label}: spec {expected!r}, database {actual!r}"
                )
    return differences


def spec_differences(conninfo: str, spec: Spec | None = None) -> list[str]:
    """Every difference between the spec and the database's events table."""
    spec = spec or parse_spec()
    catalog = read_catalog(conninfo)
    differences: list[str] = []
    if catalog.table != spec.table:
        differences.append(f"table name: spec {spec.table!r}, database {catalog.table!r}")
    if catalog.description != spec.description:
        differences.append(
            f"Description: spec {spec.description!r}, database {catalog.description!r}"
        )
    differences += compare_rows(
        "Columns",
        spec.columns,
        catalog.columns,
        ("type", "default", "nullable", "related", "comment"),
    )
    differences += compare_rows(
        "Constraints", spec.constraints, catalog.constraints, ("type", "definition")
    )
    differences += compare_rows("Indexes", spec.indexes, catalog.indexes, ("",))
    differences += compare_rows("Triggers", spec.triggers, catalog.triggers, ("",))
    return differences


def assert_matches_spec(conninfo: str) -> None:
    differences = spec_differences(conninfo)
    assert not differences, "the schema differs from the spec:\n" + "\n".join(differences)


# -- tests: the parser ---------------------------------------------------------------


def test_spec_parses_every_row() -> None:
    spec = parse_spec()
    assert spec.table == "public.course_designer_plan_events"
    assert spec.description.startswith("Append-only event log")
    assert sorted(spec.columns) == sorted(
        [
            "actor_user_id",
            "course_designer_plan_id",
            "created_at",
            "deleted_at",
            "event_type",
            "id",
            "occurred_at",
            "payload",
            "stage",
            "updated_at",
        ]
    )
    assert spec.columns["payload"] == SpecColumn(
        "payload",
        "jsonb",
        "'{}'::jsonb",
        False,
        (),
        "Event-specific structured data used to reconstruct timeline details.",
    )
    assert spec.columns["actor_user_id"].related == ("public.users",)
    assert spec.columns["actor_user_id"].nullable
    assert spec.columns["actor_user_id"].default is None
    assert spec.columns["created_at"].type == "timestamp with time zone"
    assert spec.columns["created_at"].default == "now()"
    assert spec.columns["event_type"].type == "varchar(255)"
    assert len(spec.constraints) == 11
    assert sum(c.type == "n" for c in spec.constraints.values()) == 7
    assert (
        spec.constraints["course_designer_plan_events_event_type_check"].definition
        == "CHECK ((TRIM(BOTH FROM event_type) <> ''::text))"
    )
    assert set(spec.indexes) == {
        "course_designer_plan_events_pkey",
        "course_designer_plan_events_timeline_idx",
    }
    assert set(spec.triggers) == {"set_timestamp"}


def test_spec_not_null_rows_agree_with_the_columns() -> None:
    """The spec is consistent with itself: its ``n`` rows are its non-null columns."""
    spec = parse_spec()
    not_null = {c.name: c.definition for c in spec.constraints.values() if c.type == "n"}
    assert not_null == {
        f"{TABLE}_{column.name}_not_null": f"NOT NULL {column.name}"
        for column in spec.columns.values()
        if not column.nullable
    }


def test_compare_rows_names_the_row_that_differs() -> None:
    spec = parse_spec()
    changed = dict(spec.columns)
    changed["stage"] = SpecColumn("stage", "text", None, True, (), "x")
    differences = compare_rows(
        "Columns", spec.columns, changed, ("type", "default", "nullable", "related", "comment")
    )
    assert differences == [
        "Columns row 'stage' type: spec 'course_designer_stage', database 'text'",
        "Columns row 'stage' comment: spec 'Optional workflow stage associated with the "
        "event.', database 'x'",
    ]


# -- tests: PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_pg() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated (its libpq URL)."""
    with fresh_pg_database() as url:
        migrate_url(url)
        yield libpq_url(url)


@pytest.mark.postgres
def test_postgresql_schema_matches_the_spec_row_by_row(migrated_pg: str) -> None:
    assert_matches_spec(migrated_pg)


@pytest.mark.postgres
def test_postgresql_enum_extension_and_trigger_function(migrated_pg: str) -> None:
    with psycopg.connect(migrated_pg, autocommit=True) as conn:
        labels = [
            label
            for (label,) in conn.execute(
                "SELECT enumlabel FROM pg_enum"
                " WHERE enumtypid = 'course_designer_stage'::regtype ORDER BY enumsortorder"
            )
        ]
        assert labels == list(STAGES)
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'"
        ).fetchone() == (1,)
        assert conn.execute(
            "SELECT prorettype::regtype::text FROM pg_proc"
            " WHERE oid = to_regprocedure('trigger_set_timestamp()')"
        ).fetchone() == ("trigger",)


@pytest.mark.postgres
def test_postgresql_set_timestamp_trigger_bumps_updated_at(migrated_pg: str) -> None:
    with psycopg.connect(migrated_pg) as conn:  # one transaction, rolled back
        user, plan = uuid.uuid4(), uuid.uuid4()
        conn.execute("INSERT INTO users (id) VALUES (%s)", (user,))
        conn.execute(
            "INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (%s, %s)",
            (plan, user),
        )
        row = conn.execute(
            "INSERT INTO course_designer_plan_events (course_designer_plan_id, event_type,"
            " updated_at) VALUES (%s, 'plan_created', '2000-01-01T00:00:00Z')"
            " RETURNING id, payload, stage, actor_user_id, created_at",
            (plan,),
        ).fetchone()
        assert row is not None
        event_id, payload, stage, actor, created_at = row
        assert (payload, stage, actor) == ({}, None, None)
        assert isinstance(event_id, uuid.UUID)
        assert event_id.version == 4
        updated = conn.execute(
            "UPDATE course_designer_plan_events SET deleted_at = now() WHERE id = %s"
            " RETURNING updated_at",
            (event_id,),
        ).fetchone()
        assert updated is not None
        assert updated[0] == created_at  # now(): the transaction's start
        conn.rollback()


# -- tests: SQLite -----------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def sqlite_parents(engine: Engine) -> tuple[str, str]:
    user, plan = str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user})
        conn.execute(
            text("INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (:p, :u)"),
            {"p": plan, "u": user},
        )
    return plan, user


def insert_event(engine: Engine, plan: str, **values: Any) -> str:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "course_designer_plan_id": plan,
        "event_type": "plan_created",
        **values,
    }
    columns = ", ".join(row)
    params = ", ".join(f":{name}" for name in row)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {TABLE} ({columns}) VALUES ({params})"), row)  # noqa: S608
    return str(row["id"])


def test_sqlite_has_the_spec_columns_and_nullability(sqlite_engine: Engine) -> None:
    spec = parse_spec()
    with sqlite_engine.connect() as conn:
        info = conn.exec_driver_sql(f"PRAGMA table_xinfo({TABLE})").all()
    columns = {row.name: row for row in info}
    assert sorted(columns) == sorted(spec.columns)
    for name, column in spec.columns.items():
        assert bool(columns[name].notnull) == (not column.nullable), f"column {name}"
        if column.default is not None and name != "id":
            # id's default is uuid_generate_v4() on PostgreSQL; on SQLite the
            # library always supplies a UUIDv7.
            assert columns[name].dflt_value is not None, f"column {name} has no default"
    assert [name for name, row in columns.items() if row.pk] == ["id"]


def test_sqlite_event_type_check(sqlite_engine: Engine) -> None:
    plan, _ = sqlite_parents(sqlite_engine)
    for bad in ("", "   ", "x" * 256):
        with pytest.raises(IntegrityError):
            insert_event(sqlite_engine, plan, event_type=bad)
    insert_event(sqlite_engine, plan, event_type="x" * 255)


def test_sqlite_stage_check(sqlite_engine: Engine) -> None:
    plan, _ = sqlite_parents(sqlite_engine)
    for bad in ("review", "Design", ""):
        with pytest.raises(IntegrityError):
            insert_event(sqlite_engine, plan, stage=bad)
    for good in (*STAGES, None):
        insert_event(sqlite_engine, plan, stage=good)


def test_sqlite_payload_must_be_a_json_object(sqlite_engine: Engine) -> None:
    plan, _ = sqlite_parents(sqlite_engine)
    for bad in ("[]", '"text"', "1", "null", "not json", "{"):
        with pytest.raises(IntegrityError):
            insert_event(sqlite_engine, plan, payload=bad)
    insert_event(sqlite_engine, plan, payload='{"a": [1, 2]}')
    event = insert_event(sqlite_engine, plan)
    with sqlite_engine.connect() as conn:
        payload = conn.execute(
            text(f"SELECT payload FROM {TABLE} WHERE id = :id"),  # noqa: S608
            {"id": event},
        ).scalar_one()
    assert payload == "{}"


def test_sqlite_foreign_keys(sqlite_engine: Engine) -> None:
    plan, user = sqlite_parents(sqlite_engine)
    with pytest.raises(IntegrityError):
        insert_event(sqlite_engine, str(uuid.uuid4()))
    with pytest.raises(IntegrityError):
        insert_event(sqlite_engine, plan, actor_user_id=str(uuid.uuid4()))
    insert_event(sqlite_engine, plan, actor_user_id=user)


def test_sqlite_trigger_bumps_updated_at_on_soft_delete(sqlite_engine: Engine) -> None:
    plan, _ = sqlite_parents(sqlite_engine)
    old = "2000-01-01T00:00:00.000000Z"
    event = insert_event(sqlite_engine, plan, updated_at=old, created_at=old, occurred_at=old)
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    with sqlite_engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {TABLE} SET deleted_at = :at WHERE id = :id"),  # noqa: S608
            {"at": "2001-01-01T00:00:00.000000Z", "id": event},
        )
    with sqlite_engine.connect() as conn:
        row = conn.execute(
            text(
                f"SELECT created_at, occurred_at, updated_at, deleted_at FROM {TABLE}"  # noqa: S608
                " WHERE id = :id"
            ),
            {"id": event},
        ).one()
    assert (row.created_at, row.occurred_at) == (old, old)
    assert row.deleted_at == "2001-01-01T00:00:00.000000Z"
    assert row.updated_at != old
    assert row.updated_at[:19] >= before
    assert len(row.updated_at) == len(old)
    assert row.updated_at.endswith("Z")


def test_sqlite_timeline_index(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        indexes = {row.name for row in conn.exec_driver_sql(f"PRAGMA index_list({TABLE})")}
        assert "course_designer_plan_events_timeline_idx" in indexes
        keys = [
            (row.name, row.desc)
            for row in conn.exec_driver_sql(
                "PRAGMA index_xinfo(course_designer_plan_events_timeline_idx)"
            )
            if row.key
        ]
    assert keys == [("course_designer_plan_id", 0), ("deleted_at", 0), ("occurred_at", 1)]


def test_sqlite_constraint_names(sqlite_engine: Engine) -> None:
    """SQLite keeps constraint names only in the DDL; they are the spec's."""
    with sqlite_engine.connect() as conn:
        ddl = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
            {"t": TABLE},
        ).scalar_one()
    spec = parse_spec()
    for constraint in spec.constraints.values():
        if constraint.type != "n":
            assert re.search(rf"CONSTRAINT {constraint.name}\s", ddl), constraint.name
