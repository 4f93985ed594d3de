"""`POST /api/uploads?sender=…` with a photo as the raw body (Content-Type image/*): stored
safely, then handed to the conversation as the answer to "do you have a photo?".

Refusals, cheapest first: a malformed sender (422); over the rate budget (429
``rate_limited`` — an upload spends the sender's and the address's budget like a message);
a body too large (413); no conversation (404); no photo asked for (409
``photo_not_expected``: photos are taken only when the flow asks, so the endpoint is no free
file storage); five photos already (429 ``too_many_photos``); the disk quota (507
``storage_full``); not a photo (415, 422).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bot.db.models import Conversation
from bot.hub.rate_limit import customer_keys, too_fast
from bot.hub.routes.messages import SENDER_RE
from bot.services.photo_intake import PhotoRefused, accept_photo
from bot.services.uploads import UploadRejected

router = APIRouter()


@router.post("/api/uploads", response_model=None)
async def upload(request: Request, sender: str) -> dict[str, Any] | JSONResponse:
    if not SENDER_RE.fullmatch(sender):
        raise HTTPException(status_code=422, detail="invalid sender")
    client = request.client.host if request.client else None
    wait = await request.app.state.limiter.hit(*customer_keys(sender, client))
    if wait > 0:
        return too_fast(wait)
    settings = request.app.state.settings
    limit = settings.upload_max_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise HTTPException(status_code=413, detail=f"file larger than {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise HTTPException(status_code=413, detail=f"file larger than {limit} bytes")

    def _store() -> tuple[str, str]:
        with request.app.state.sessions() as session:
            row = accept_photo(session, sender, bytes(data), max_bytes=limit,
                               quota_bytes=settings.upload_quota_bytes)
            return row.id, session.get(Conversation, row.conversation_id).channel

    try:
        attachment_id, channel = await run_in_threadpool(_store)
    except PhotoRefused as exc:
        return JSONResponse({"error": exc.error, "detail": str(exc)}, status_code=exc.status)
    except UploadRejected as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from exc
    result = await request.app.state.turns.run(
        sender=sender, channel=channel,
        text=f'/inform{{"photo_id": "{attachment_id}"}}', metadata={"button_title": "📷"})
    # the uploader gets the answer in this response; the rest (consoles) as after any turn
    await request.app.state.delivery.after_turn(sender, "upload", result)
    return {"attachment_id": attachment_id, "messages": result.messages}
