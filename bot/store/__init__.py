"""Conversation stores behind one interface; `open_store` picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.base import Store, StoreUnavailable

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["Store", "StoreUnavailable", "open_store"]


def open_store(settings: Settings) -> Store:
    if settings.store == "redis":
        from bot.store.redis import RedisStore

        return RedisStore(settings.redis_url)
    from bot.store.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path)
