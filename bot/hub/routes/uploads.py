"""`POST /api/uploads?sender=…` with a photo as the raw body (Content-Type image/*): stored
safely, then handed to the conversation as the answer to "do you have a photo?"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.hub.routes.messages import SENDER_RE
from bot.services import conversations as convs
from bot.services.uploads import UploadRejected, store_image

router = APIRouter()
MAX_PER_CONVERSATION = 5


@router.post("/api/uploads")
async def upload(request: Request, sender: str) -> dict[str, Any]:
    if not SENDER_RE.fullmatch(sender):
        raise HTTPException(status_code=422, detail="invalid sender")
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
            current = convs.latest_for_sender(session, sender)
            # only into an existing conversation, and a few photos each: no free disk space
            if current is None:
                raise HTTPException(status_code=404, detail="no conversation for this sender")
            if convs.attachment_count(session, current.id) >= MAX_PER_CONVERSATION:
                raise HTTPException(status_code=429, detail="too many photos in this conversation")
            try:
                row = store_image(session, bytes(data), max_bytes=limit,
                                  conversation_id=current.id)
            except UploadRejected as exc:
                raise HTTPException(status_code=exc.status, detail=str(exc)) from exc
            session.commit()
            return row.id, current.channel

    from starlette.concurrency import run_in_threadpool

    attachment_id, channel = await run_in_threadpool(_store)
    result = await run_in_threadpool(
        request.app.state.turns.handle, sender=sender, channel=channel,
        text=f'/inform{{"photo_id": "{attachment_id}"}}', metadata={"button_title": "📷"})
    return {"attachment_id": attachment_id, "messages": result.messages}
