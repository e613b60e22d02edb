"""Running the packaged Alembic migrations programmatically."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

import migrations

VERSION_TABLE = "eventsource_alembic_version"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest schema; returns (before, after)."""
    before = current_revision(engine)
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()


def upgrade_sql(url: URL) -> str:
    """The DDL ``upgrade`` would run, for hosts that run their own migrations."""
    config = _config()
    buffer = io.StringIO()
    config.output_buffer = buffer
    # Config values go through ConfigParser interpolation: a percent-encoded URL
    # (``options=-csearch_path%3D...``, a password with ``%``) must be escaped.
    rendered = url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()
