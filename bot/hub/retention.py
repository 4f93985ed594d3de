"""The hub applies ``RETENTION_DAYS`` by itself: shortly after it starts, then every hour.

Several hubs may run it at once: a purge is idempotent (a conversation whose transcript was
erased is not touched again), so no leader is needed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from bot.core.config import Settings

log = logging.getLogger(__name__)

FIRST_RUN_SECONDS = 2.0
EVERY_SECONDS = 3600.0


def purge_once(settings: Settings, sessions: Any) -> dict[str, int]:
    from bot.services import privacy

    with sessions() as session:
        return privacy.purge_expired(session, privacy.tracker_engine(settings.tracker_url()),
                                     privacy.upload_dir(settings), settings.retention_days)


async def retention_loop(settings: Settings, sessions: Any) -> None:
    if settings.retention_days <= 0:
        return
    await asyncio.sleep(FIRST_RUN_SECONDS)
    while True:
        try:
            counts = await run_in_threadpool(purge_once, settings, sessions)
            if counts.get("conversations") or counts.get("tracker_events"):
                log.info("retention (%d days): %s", settings.retention_days, counts)
        except Exception:  # noqa: BLE001 - a failed run is retried at the next hour
            log.exception("retention run failed")
        await asyncio.sleep(EVERY_SECONDS)
