"""Photos customers attach to a claim: checked by content (not by the name or the declared
type) and decoded in full with Pillow (a JPEG header followed by anything else is no photo),
size-limited, stored under var/uploads with a random name and never served back as anything
but an image."""

from __future__ import annotations

import io
import os
import secrets
import warnings
from pathlib import Path

from sqlalchemy.orm import Session

from bot.core.config import ROOT, VAR_DIR, Settings, get_settings
from bot.db.models import Attachment

UPLOAD_DIR = VAR_DIR / "uploads"  # the default of the UPLOAD_DIR setting
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)


MAX_PIXELS = 50_000_000  # a larger picture is refused before it is decoded (decompression bomb)
_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def upload_dir(settings: Settings | None = None) -> Path:
    """Where photos live: the UPLOAD_DIR setting (backups and tests point it elsewhere)."""
    configured = (settings or get_settings()).upload_dir
    if not configured:
        return UPLOAD_DIR
    path = Path(configured)
    return path if path.is_absolute() else ROOT / path


class UploadRejected(ValueError):
    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


def sniff(data: bytes) -> tuple[str, str] | None:
    for magic, content_type, ext in _SIGNATURES:
        if data.startswith(magic):
            return content_type, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


def store_image(session: Session, data: bytes, *, conversation_id: int | None,
                max_bytes: int, directory: Path | None = None) -> Attachment:
    if not data:
        raise UploadRejected("empty file", 422)
    if len(data) > max_bytes:
        raise UploadRejected(f"file larger than {max_bytes} bytes", 413)
    kind = sniff(data)
    if kind is None:
        raise UploadRejected("only JPEG, PNG or WebP photos are accepted", 415)
    content_type, ext = kind
    decode_check(data, content_type)
    directory = directory or upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    attachment_id = secrets.token_hex(16)
    path = directory / f"{attachment_id}.{ext}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    row = Attachment(id=attachment_id, conversation_id=conversation_id,
                     content_type=content_type, size=len(data))
    session.add(row)
    session.flush()
    return row


def decode_check(data: bytes, content_type: str) -> None:
    """Decode the whole picture (Pillow, only the format its signature names); anything that
    does not decode, or is absurdly large, is refused as not being a photo."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in requirements.lock
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[content_type]]) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UploadRejected("picture too large", 415)
                img.load()
    except UploadRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder complaint means "not a photo"
        raise UploadRejected("only JPEG, PNG or WebP photos are accepted", 415) from exc


def link_to_case(session: Session, attachment_id: str, case_id: int) -> None:
    row = session.get(Attachment, attachment_id)
    if row is not None:
        row.case_id = case_id
