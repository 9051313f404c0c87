"""Alembic environment: runs against the connection handed over by strongroom.core.db.migrate."""
from alembic import context

from strongroom.core.db.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # pragma: no cover - only for `alembic revision --autogenerate` by hand
    from strongroom.core.db.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
