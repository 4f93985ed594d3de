"""Turn API: `POST /api/messages` — one customer message in, the bot's replies out.

Each message spends the sender's and the client address's rate budget (shared with the widget
socket and uploads): over it, 429 ``{"error": "rate_limited", "retry_after": s}`` with a
``Retry-After`` header, and the message is not processed.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, validator

from bot.hub.rate_limit import customer_keys, too_fast

router = APIRouter()

# always used with fullmatch: "^…$" with match() would accept a trailing newline
SENDER_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
MAX_BODY_TEXT = 20000  # hard cap on what we accept at all; longer is cut before storing


class TurnIn(BaseModel):
    sender: str
    text: Optional[str] = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    message_id: Optional[str] = Field(default=None, max_length=64)

    @validator("sender")
    def _sender_shape(cls, v: str) -> str:  # noqa: N805 - pydantic signature
        if not SENDER_RE.fullmatch(v):
            raise ValueError("sender must be 16-128 characters of [A-Za-z0-9_-]")
        return v

    @validator("text", pre=True, always=True)
    def _text_str(cls, v: Any) -> str:  # noqa: N805
        if v is None:
            return ""
        if not isinstance(v, str):
            raise ValueError("text must be a string")
        return v[:MAX_BODY_TEXT]

    @validator("metadata", pre=True, always=True)
    def _metadata_dict(cls, v: Any) -> dict:  # noqa: N805
        return v if isinstance(v, dict) else {}


@router.post("/api/messages", response_model=None)
async def post_message(body: TurnIn, request: Request) -> dict[str, Any] | JSONResponse:
    client = request.client.host if request.client else None
    wait = await request.app.state.limiter.hit(*customer_keys(body.sender, client))
    if wait > 0:
        return too_fast(wait)
    channel = body.metadata.get("channel") if body.metadata.get("channel") in ("web",) else "api"
    try:
        result = await request.app.state.turns.run(
            sender=body.sender, text=body.text, channel=channel,
            metadata=body.metadata, client_message_id=body.message_id,
        )
    except Exception as exc:  # the DB itself is down: nothing we can promise
        raise HTTPException(status_code=503, detail="service unavailable") from exc
    await request.app.state.delivery.after_turn(body.sender, channel, result)
    return {"messages": result.messages}
