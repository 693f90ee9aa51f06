"""GET /: a small web page to upload DICOM slices and see the detections drawn over them.

The page is static (service/http/static/) and calls /v1/detect?preview=true with the API key the
user types in; it is served without authentication because it holds no data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["viewer"])


@router.get("/", summary="Web viewer", response_class=FileResponse, include_in_schema=True)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
