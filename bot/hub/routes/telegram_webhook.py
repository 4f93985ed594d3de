"""`POST /telegram/webhook`: Telegram's calls, refused without the secret token we registered."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request

router = APIRouter()
MAX_UPDATE_BYTES = 1_000_000  # real updates are a few KB; photos arrive as file ids


@router.post("/telegram/webhook", include_in_schema=False)
async def telegram_webhook(request: Request) -> dict[str, bool]:
    channel = getattr(request.app.state, "telegram", None)
    if channel is None or not channel.webhook_mode:
        raise HTTPException(status_code=404, detail="not found")
    if not channel.check_secret(request.headers.get("x-telegram-bot-api-secret-token")):
        raise HTTPException(status_code=403, detail="forbidden")
    body = await request.body()
    if len(body) > MAX_UPDATE_BYTES:
        raise HTTPException(status_code=413, detail="update too large")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail="malformed JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise HTTPException(status_code=400, detail="not a Telegram update")
    if not channel.feed_json(data):
        raise HTTPException(status_code=400, detail="not a Telegram update")
    return {"ok": True}
