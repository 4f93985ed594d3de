"""The hub: the only public process. Channels (widget, Telegram), turn API, health.

``create_app`` builds everything from a ``Settings`` object and opens nothing at import time.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI

from bot.core.config import Settings, _env, get_settings
from bot.db.session import session_factory
from bot.hub import console, rate_limit
from bot.hub.channels.telegram import TelegramChannel
from bot.hub.channels.web import WebConnections
from bot.hub.delivery import Delivery
from bot.hub.handoff import HandoffHub
from bot.hub.middleware import BodyLimit, SecurityHeaders, protect_logs
from bot.hub.rasa_client import pool_from_settings
from bot.hub.retention import retention_loop
from bot.hub.routes import health, messages, telegram_webhook, uploads, widget, ws
from bot.hub.turns import TurnService


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    protect_logs(secrets_of(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rasa = pool_from_settings(settings)  # one Rasa, or each sender to its replica
        app.state.settings = settings
        app.state.rasa = rasa
        app.state.sessions = session_factory(settings.database_url)
        app.state.turns = TurnService(settings, rasa, app.state.sessions)
        # /healthz's own threads: never behind turns or console calls (routes/health.py)
        app.state.health_threads = anyio.CapacityLimiter(4)
        app.state.web = WebConnections()
        app.state.limiter = rate_limit.from_settings(settings)  # REST, sockets and uploads
        app.state.telegram = None
        # one way out for every turn and every message to a customer or a console; over
        # Redis pub/sub when several hubs share the work (REDIS_URL)
        app.state.delivery = Delivery(app.state.web, lambda: app.state.telegram,
                                      redis_url=settings.redis_url,
                                      prefix=settings.redis_key_prefix)
        await app.state.delivery.start()
        app.state.handoff = HandoffHub(settings, app.state.sessions, rasa, app.state.delivery)
        app.state.delivery.turn_hooks.append(app.state.handoff.on_turn)
        app.state.on_customer_typing = app.state.handoff.on_customer_typing
        if settings.telegram_bot_token:
            app.state.telegram = TelegramChannel(settings, app.state.turns, app.state.sessions)
            app.state.telegram.on_turn = app.state.delivery.after_turn
            await app.state.telegram.start()
        retention = asyncio.create_task(retention_loop(settings, app.state.sessions))
        try:
            yield
        finally:
            retention.cancel()
            if app.state.telegram is not None:
                await app.state.telegram.stop()
            rasa.close()
            await app.state.limiter.close()
            await app.state.delivery.close()

    # no public API description: /docs, /redoc and /openapi.json do not exist
    app = FastAPI(title="Postventa hub", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(uploads.router)
    app.include_router(ws.router)
    app.include_router(widget.router)
    app.include_router(telegram_webhook.router)
    app.include_router(console.router)
    # inside out: a body over the limit is refused before anything reads it; CORS for the
    # sites embedding the widget (a 413 included); security headers on every answer
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       per_path={"/api/uploads": settings.upload_max_bytes})
    if settings.widget_origins.strip():
        from fastapi.middleware.cors import CORSMiddleware

        # other sites that embed the widget call /api/uploads and /api/telegram-link
        origins = [o.strip() for o in settings.widget_origins.split(",") if o.strip()]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(SecurityHeaders)
    return app


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never appear in a log line."""
    return [settings.rasa_token, settings.secret_key, settings.telegram_bot_token,
            settings.telegram_webhook_secret, settings.order_api_token,
            _env("ADMIN_PASSWORD", ""), _env("NEW_USER_PASSWORD", ""),
            urlsplit(settings.redis_url).password or ""]
