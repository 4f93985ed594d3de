"""The agents' console (hand-off to humans): ``router`` is mounted by the hub's app."""

from bot.hub.console.routes import router

__all__ = ["router"]
