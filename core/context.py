"""What every operation needs at hand: settings, the engine and the keyring."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from strongroom.core import audit
from strongroom.core.allocator import keep_freed_memory
from strongroom.core.config import Settings
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine


@dataclass
class Context:
    settings: Settings
    engine: Engine
    keyring: Keyring

    def close(self) -> None:
        self.engine.dispose()


def open_context(settings: Settings, *, engine: Engine | None = None) -> Context:
    """Load the KEK and connect; fails early with a clear error if either is missing.
    The process that does the work (daemon, offline CLI command, benchmark) also keeps
    freed memory for its next batch (core.allocator)."""
    keep_freed_memory()
    keyring = Keyring(load_keks(settings.keys))
    engine = engine or make_engine(settings.database.url, echo=settings.database.echo,
                                   pool_size=settings.database.pool_size)
    audit.seal_with(engine, keyring)   # entries written through this engine carry a seal
    return Context(settings, engine, keyring)
