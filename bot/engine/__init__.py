"""The troubleshooting conversation (see bot/engine/core.py for the shape of a turn)."""

from bot.engine.core import Dialogue, Engine

__all__ = ["Dialogue", "Engine"]
