"""A request's body -> the picture it holds, or an HTTP error saying what is wrong with it.

``POST /api/predict`` takes a picture as an image file in a multipart form (field ``file``) or as the raw body
(``image/*``); a digit model's app also takes JSON ``{"pixels": 28 rows of 28 numbers 0..255}``. ``POST /api/read``
takes image files only, the same two ways (:func:`read_photo`). Image bytes are decoded by
:func:`convnp.data.image_files.read_image_bytes`, the decoder ``convnp predict`` uses for files, so a saved PNG and
the same PNG uploaded give the same pixels: grey for a grey model, RGB for a colour one. Each fault a client can
make becomes one 4xx line: 400 (empty, not an image, malformed form), 413 (more than
:data:`~convnp.data.image_files.MAX_PIXELS` pixels, known from the header before decoding), 415 (another content
type, or JSON for a model that takes image files only), 422 (JSON or form fields that do not match the schema).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from convnp.data.image_files import ImageTooLargeError, read_image_bytes, upright_size
from convnp.errors import DataError

__all__ = ["PixelsRequest", "describe_errors", "read_photo", "read_picture", "request_body"]

SIDE = 28  # the JSON array's side: MNIST's

Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]


class PixelsRequest(BaseModel):
    """A digit as a 28x28 array: ink bright (up to 255) on a dark background (0); prepared like an image file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE, description="28 rows of 28 numbers 0..255")]


_IMAGE_FILE = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary", "description": "an image file"}},
            "required": ["file"],
        }
    },
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}


def request_body(pixels_json: bool) -> dict:
    """The OpenAPI request body of ``POST /api/predict``: an image file, and with ``pixels_json`` (a digit model)
    the JSON array too. The endpoint reads the body itself to accept each of them."""
    content = {"application/json": {"schema": PixelsRequest.model_json_schema()}} if pixels_json else {}
    return {"required": True, "content": {**content, **_IMAGE_FILE}}


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


async def read_picture(request: Request, *, rgb: bool, pixels_json: bool,
                       max_side: int | None = None) -> np.ndarray:
    """The request's picture, or an HTTPException saying what is wrong.

    Parameters
    ----------
    request : Request
    rgb : bool
        Decode image files in colour, `(H, W, 3)`, rather than grey, `(H, W)`.
    pixels_json : bool
        Accept JSON ``{"pixels": ...}`` (a digit model's app); without it JSON is a 415.
    max_side : int, optional
        Decode a large image file smaller (:func:`~convnp.data.image_files.read_image_bytes`' ``max_side``).

    Returns
    -------
    ndarray of shape `(H, W)` or `(H, W, 3)`, float64 in 0..255 (the JSON array: `(28, 28)`)
    """
    refusal = "this model takes image files, not JSON pixels (those are for 28x28 digit models)"
    is_json, body = await _body(request, pixels_json=pixels_json, json_refusal=refusal)
    if is_json:
        try:
            pixels = PixelsRequest.model_validate_json(body).pixels
        except ValidationError as err:
            raise HTTPException(422, describe_errors(err)) from None
        return np.asarray(pixels, dtype=np.float64)  # (28, 28)
    return await run_in_threadpool(_decode, body, rgb, max_side)


async def read_photo(request: Request, *, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The request's picture of several digits (``POST /api/read``): an image file only, decoded grey.

    Returns
    -------
    picture : ndarray of shape `(h, w)`, float64 in 0..255
        Decoded smaller if large (``max_side``, as :func:`read_picture`).
    size : (H, W)
        The picture's own size, turned upright by its EXIF orientation as it was decoded: what places found in
        ``picture`` are given back in (:func:`~convnp.data.image_files.upright_size`).
    """
    refusal = ("POST /api/read takes a picture of the digits as an image file, not JSON pixels (a 28x28 array "
               "holds one digit: POST /api/predict)")
    _, body = await _body(request, pixels_json=False, json_refusal=refusal)
    return await run_in_threadpool(_decode_upright, body, max_side)


async def _body(request: Request, *, pixels_json: bool, json_refusal: str) -> tuple[bool, bytes]:
    """The request's body as ``(is_json, bytes)``: an uploaded file's bytes, the raw image bytes, or (with
    ``pixels_json``) the JSON text; every other body a 4xx (JSON without ``pixels_json``: 415 ``json_refusal``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return False, await _uploaded_file(request)
    body = await request.body()
    sendable = ("application/json, multipart/form-data (field 'file') or image/*" if pixels_json
                else "an image file: multipart/form-data (field 'file') or image/*")
    if not body:
        raise HTTPException(400, f"empty request body; send {sendable}")
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json and pixels_json:
        return True, body
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return False, body
    if is_json:
        raise HTTPException(415, f"{json_refusal}; send {sendable}")
    raise HTTPException(415, f"unsupported content type {content_type or '(none)'!r}; send {sendable}")


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


def _decode(data: bytes, rgb: bool, max_side: int | None = None) -> np.ndarray:
    """Image bytes -> grey ``(H, W)`` or RGB ``(H, W, 3)`` in 0..255; too large is a 413, anything else unreadable a
    400."""
    try:
        return read_image_bytes(data, rgb=rgb, max_side=max_side)
    except ImageTooLargeError as err:
        raise HTTPException(413, str(err)) from None
    except DataError as err:
        raise HTTPException(400, str(err)) from None


def _decode_upright(data: bytes, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Image bytes -> grey ``(h, w)`` (decoded towards ``max_side``) and the picture's upright full size ``(H, W)``."""
    picture = _decode(data, False, max_side)
    try:
        return picture, upright_size(data)
    except DataError as err:  # the header was read once already: not expected, but one line if it comes
        raise HTTPException(400, str(err)) from None
