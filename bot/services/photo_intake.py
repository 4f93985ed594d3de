"""Taking a customer's photo into their conversation, the same for every channel (widget
uploads, Telegram): only into an existing conversation, only when the flow asked for a photo,
a few per conversation, and never past the disk quota.

Each refusal has a status and a short code the channels turn into polite words.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session

from bot.db.models import Attachment
from bot.services import conversations as convs
from bot.services.uploads import store_image

log = logging.getLogger(__name__)

MAX_PER_CONVERSATION = 5
# Checking the quota and storing must not interleave between two uploads of this process,
# or both could pass the check and overshoot it together.
_QUOTA_LOCK = threading.Lock()


class PhotoRefused(Exception):
    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error


def check_expected(session: Session, sender: str) -> int:
    """The conversation a photo of ``sender`` would join (its id); refused with 404 when the
    sender has none, 409 when the flow is not asking for a photo."""
    conv = convs.latest_for_sender(session, sender)
    if conv is None:
        raise PhotoRefused(404, "no_conversation", "no conversation for this sender")
    if not convs.expects_photo(session, conv.id):
        raise PhotoRefused(409, "photo_not_expected", "no photo was asked for")
    return conv.id


def accept_photo(session: Session, sender: str, data: bytes, *, max_bytes: int,
                 quota_bytes: int) -> Attachment:
    """Check and store the photo, and commit (inside the quota lock, see above).

    Raises ``PhotoRefused`` (404, 409, 429 too many photos, 507 storage full) or
    ``UploadRejected`` (not a photo, too large)."""
    conversation_id = check_expected(session, sender)
    if convs.attachment_count(session, conversation_id) >= MAX_PER_CONVERSATION:
        raise PhotoRefused(429, "too_many_photos", "too many photos in this conversation")
    with _QUOTA_LOCK:
        used = convs.attachments_bytes(session)
        if used + len(data) > quota_bytes:
            log.warning("photo refused: the upload quota is full (%d of %d bytes used); "
                        "free space or raise UPLOAD_QUOTA_BYTES", used, quota_bytes)
            raise PhotoRefused(507, "storage_full", "storage full")
        row = store_image(session, data, max_bytes=max_bytes, conversation_id=conversation_id)
        session.commit()
    return row
