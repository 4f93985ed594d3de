"""The hub: the only public process. Channels, turn API, health; console/admin come later.

``create_app`` builds everything from a ``Settings`` object and opens nothing at import time.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot.core.config import Settings, get_settings
from bot.db.session import session_factory
from bot.hub.rasa_client import RasaClient
from bot.hub.routes import health, messages, uploads
from bot.hub.turns import TurnService


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rasa = RasaClient(settings.rasa_url, settings.rasa_token, settings.rasa_timeout)
        app.state.settings = settings
        app.state.rasa = rasa
        app.state.sessions = session_factory(settings.database_url)
        app.state.turns = TurnService(settings, rasa, app.state.sessions)
        try:
            yield
        finally:
            rasa.close()

    app = FastAPI(title="Postventa hub", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(uploads.router)
    return app
