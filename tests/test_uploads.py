"""Photo storage: content sniffing, size limit, private files, link to a case."""

import os
import stat

import pytest

from bot.db.models import Attachment
from bot.services import cases
from bot.services.uploads import UploadRejected, link_to_case, sniff, store_image
from tests.test_integration_cases import PNG

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 100
WEBP = b"RIFF\x24\0\0\0WEBPVP8 " + b"\0" * 40


def test_sniff_by_content():
    assert sniff(PNG) == ("image/png", "png")
    assert sniff(JPEG) == ("image/jpeg", "jpg")
    assert sniff(WEBP) == ("image/webp", "webp")
    assert sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert sniff(b"GIF89a") is None


@pytest.mark.parametrize("data, status", [
    (b"", 422), (b"%PDF-1.7", 415), (b"<html></html>", 415), (PNG + b"\0" * 2000, 413),
    (JPEG[:4] + b"<html><script>alert(1)</script></html>", 415), (PNG[:33], 415),
], ids=["empty", "pdf", "html", "too-big", "jpeg-header-then-html", "truncated-png"])
def test_rejections(session, tmp_path, data, status):
    target = tmp_path / "uploads"
    with pytest.raises(UploadRejected) as exc:
        store_image(session, data, conversation_id=None, max_bytes=1000, directory=target)
    assert exc.value.status == status
    assert not target.exists() or list(target.iterdir()) == []


def test_stored_privately_and_linked(session, tmp_path):
    row = store_image(session, PNG, conversation_id=None, max_bytes=10_000, directory=tmp_path)
    path = tmp_path / f"{row.id}.png"
    assert path.read_bytes() == PNG
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    case = cases.open_case(session, case_type="warranty").case
    link_to_case(session, row.id, case.id)
    session.flush()
    assert session.get(Attachment, row.id).case_id == case.id
