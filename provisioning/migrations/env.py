"""Alembic environment: runs against the engine the caller passes in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

import provisioning.appservice.store  # registers the appservice's tables
import provisioning.db.invite_reports  # registers «это не я» reports
import provisioning.db.models
import provisioning.db.phone_codes  # registers the SMS codes' table
import provisioning.db.polls  # noqa: F401 - registers the polls' tables
from provisioning.db.base import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
        engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copy
        )
        context.run_migrations()


run_migrations()
