"""A prediction request's body -> the grey picture of its digit, or an HTTP error saying what is wrong with it.

``POST /api/predict`` takes a digit three ways: an image file in a multipart form (field ``file``), an image as the
raw body (``image/*``), or JSON ``{"pixels": 28 rows of 28 numbers 0..255}``. Image bytes are decoded by
:func:`convnp.data.image_files.read_image_bytes`, the decoder ``convnp predict`` uses for files, so a saved PNG and
the same PNG uploaded give the same pixels. Each fault a client can make becomes one 4xx line: 400 (empty, not an
image, malformed form), 413 (more than :data:`~convnp.data.image_files.MAX_PIXELS` pixels, known from the header
before decoding), 415 (another content type), 422 (JSON or form fields that do not match the schema).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from convnp.data.image_files import ImageTooLargeError, read_image_bytes
from convnp.errors import DataError

__all__ = ["REQUEST_BODY", "PixelsRequest", "describe_errors", "read_digit"]

SIDE = 28  # the JSON array's side: MNIST's

Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]


class PixelsRequest(BaseModel):
    """A digit as a 28x28 array: ink bright (up to 255) on a dark background (0); prepared like an image file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE, description="28 rows of 28 numbers 0..255")]


# Both ways to send a digit, for the OpenAPI document: the endpoint reads the body itself to accept either.
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": PixelsRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary", "description": "an image file"}},
                "required": ["file"],
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


def describe_errors(err: ValidationError | RequestValidationError) -> str:
    """Pydantic's errors -> one line: ``pixels[3][5]: Input should be less than or equal to 255; ...``."""
    parts = []
    for e in err.errors()[:5]:
        loc = ""
        for item in e.get("loc", ()):
            loc += f"[{item}]" if isinstance(item, int) else (f".{item}" if loc else str(item))
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    more = len(err.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


async def read_digit(request: Request) -> np.ndarray:
    """The request's digit as a grey picture ``(H, W)`` in 0..255, or an HTTPException saying what is wrong."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await run_in_threadpool(_decode, await _uploaded_file(request))
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty request body; send an image file or JSON {\"pixels\": [[...], ...]}")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            pixels = PixelsRequest.model_validate_json(body).pixels
        except ValidationError as err:
            raise HTTPException(422, describe_errors(err)) from None
        return np.asarray(pixels, dtype=np.float64)  # (28, 28)
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return await run_in_threadpool(_decode, body)
    raise HTTPException(
        415, f"unsupported content type {content_type or '(none)'!r}; send application/json, multipart/form-data "
        "(field 'file') or image/*"
    )


async def _uploaded_file(request: Request) -> bytes:
    """The bytes of a multipart form's ``file`` field."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException:
        raise
    except Exception as err:  # noqa: BLE001 - malformed multipart, in whatever way the parser noticed
        raise HTTPException(400, f"malformed multipart/form-data body ({err})") from None
    upload = form.get("file")
    if upload is None:
        raise HTTPException(422, "multipart body has no field 'file'; send the image as file=@digit.png")
    if isinstance(upload, str):
        raise HTTPException(422, "multipart field 'file' must be a file upload, got a plain text field")
    return await upload.read()


def _decode(data: bytes) -> np.ndarray:
    """Image bytes -> grey ``(H, W)`` in 0..255; too large is a 413, anything else unreadable a 400."""
    try:
        return read_image_bytes(data)
    except ImageTooLargeError as err:
        raise HTTPException(413, str(err)) from None
    except DataError as err:
        raise HTTPException(400, str(err)) from None
