"""The web app: a page, a prediction endpoint (and a digit model's reading one) and a health check around one
loaded checkpoint.

FastAPI is imported in :mod:`convnp.web` only: here, in :mod:`convnp.web.decode`, which turns a request's body into
its picture, and in :mod:`convnp.web.schemas`, the answers' JSON. The page depends on the model
(:func:`convnp.web.classifiers.load`): a 28x28x1 model is a digit model, anything else an image model. Predictions
come from a :class:`convnp.inference.Classifier`, as ``convnp predict``'s do, with the same preparation. Routes:

- ``GET /``: for a digit model the drawing pad (``static/index.html``): draw a digit, or take or choose a photo of
  one, see the prediction, the 28x28 picture the network was given, the ten probabilities and the first
  convolution's feature maps; or, switched to "a number", draw or photograph several digits and see each boxed
  and read; for an image model the upload page (``static/upload.html``): choose a picture (file picker, drag and
  drop, or paste), see it with the part the model sees framed, and the top 5 classes by name with their
  probabilities;
- ``POST /api/predict``: one picture, as an image file (multipart field ``file``, or the raw bytes with an
  ``image/*`` content type), or for a digit model JSON ``{"pixels": 28 rows of 28 numbers 0..255}``; returns the
  label, its ``class`` (the checkpoint's name for it), the probabilities, the ``top`` 5 classes with their names,
  the picture as the model was given it (``prepared``: a digit model's 28x28 digit) and (unless
  ``?feature_maps=false``) the first Conv2D layer's output (after its ReLU);
- ``POST /api/read`` (a digit model's app): a picture of several digits written in a row, as an image file (the
  same two ways; no JSON); returns the ``number`` read and, for each digit left to right, its label, class,
  probability, probabilities, ``box`` (top, left, bottom, right in the picture's pixels) and ``prepared`` 28x28
  image, read as ``convnp read`` reads files (:mod:`convnp.reading`);
- ``GET /api/health``: ``{"status": "ok", "model": ..., "parameters": n, "kind": "digits" | "images",
  "input_shape": [H, W, C], "classes": [...]}``;
- ``GET /docs``: the OpenAPI documentation (FastAPI's default).

A digit model's pictures are prepared as ``convnp predict`` prepares its files
(:func:`~convnp.data.images.preprocess_digit`: ink found whatever its polarity, cropped, scaled into a 20x20 box,
centred by its centre of mass on 28x28). For the JSON array this means a raw 28x28 downsample of a drawing works as
well as an MNIST-prepared digit, which the preparation leaves nearly unchanged. An image model's pictures are too
(:func:`~convnp.data.images.preprocess_image`: the model's channels, scaled to cover its input keeping the aspect
ratio, centre-cropped), so the same file gets the same answer from the page and from ``convnp predict``.

Every error a client can cause is a 4xx with ``{"detail": "<one line>"}``: 400 (empty body, not an image, no
ink), 413 (body over the app's limit, :data:`MAX_BODY_BYTES` for a digit model and :data:`MAX_IMAGE_BODY_BYTES`
for an image model, by its Content-Length header and by the bytes actually received; image over
:data:`~convnp.data.image_files.MAX_PIXELS` pixels, from its header before decoding), 415 (unsupported content
type), 422 (JSON that does not match the schema, bad query parameters). Anything unexpected is a 500 with a fixed
message; tracebacks never reach the client.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from convnp.data.image_files import MAX_PIXELS
from convnp.errors import DataError
from convnp.web.classifiers import DigitClassifier, ImageClassifier, ServedModel, load
from convnp.web.decode import describe_errors, read_photo, read_picture, request_body
from convnp.web.schemas import ErrorResponse, Health, Prediction, Reading

__all__ = ["MAX_BODY_BYTES", "MAX_IMAGE_BODY_BYTES", "DigitClassifier", "ImageClassifier", "Prediction",
           "create_app"]

#: Largest request body a digit model's app accepts (1 MiB): a 280x280 drawing as PNG is a few kB, a 28x28 JSON
#: array under 10 kB.
MAX_BODY_BYTES = 1 << 20
#: Largest request body an image model's app accepts (16 MiB): a phone's photo as it comes, JPEG or PNG.
MAX_IMAGE_BODY_BYTES = 16 << 20

logger = logging.getLogger("convnp.web")


# ---- the errors, as documented ---------------------------------------------------------------------------------------
def _documented_errors(served: ServedModel, limit: int, *, pixels_json: bool) -> dict:
    """The 4xx answers of ``POST /api/predict`` (``pixels_json``: a digit model's, which takes JSON too) and
    ``POST /api/read``, as the OpenAPI document lists them."""
    digits = served.kind == "digits"
    return {
        400: {"model": ErrorResponse, "description": "Empty body, not an image, damaged image" +
              (", or no ink found" if digits else "")},
        413: {"model": ErrorResponse, "description": f"Body over {limit:,} bytes, or image over {MAX_PIXELS:,} "
                                                     "pixels"},
        415: {"model": ErrorResponse, "description": "Content type is not " +
              ("JSON, multipart/form-data or image/*" if pixels_json else "multipart/form-data or image/*")},
        422: {"model": ErrorResponse, "description": "JSON or query parameters that do not match the schema"
              if pixels_json or not digits else "A multipart body without a file in its field 'file'"},
    }


# ---- body size limit -------------------------------------------------------------------------------------------------
class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with a 413, by the Content-Length header when there is one
    and by counting the bytes received in any case (chunked uploads, or a header that lies)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                await _error(400, f"Content-Length header {declared[:40].decode('latin-1')!r} is not a number")(
                    scope, receive, send)
                return
            if n > self.limit:
                await _error(413, f"request body of {n:,} bytes is over the {self.limit:,} accepted")(
                    scope, receive, send)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _error(413, f"request body is over the {self.limit:,} bytes accepted")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


# ---- the app ---------------------------------------------------------------------------------------------------------
def create_app(checkpoint_path) -> FastAPI:
    """Load ``checkpoint_path`` (a ``.npz`` file or a run folder) once and build the app around it: the drawing pad
    for a 28x28x1 model, the upload page for any other.

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) for a checkpoint that cannot be loaded, and
    ``ValueError`` for a model whose input has neither 1 nor 3 channels.
    """
    served = load(checkpoint_path)
    if served.kind == "digits":
        title, what, limit = "convnp digits", "Draw a digit", MAX_BODY_BYTES
    else:
        title, what, limit = "convnp images", "Send a picture", MAX_IMAGE_BODY_BYTES
    app = FastAPI(
        title=title,
        description=f"{what} and see what the model `{served.name}` makes of it. Errors are "
        '`{"detail": "..."}` with a 4xx status.',
        version="1",
    )
    app.add_middleware(BodyLimit, limit=limit)
    app.state.classifier = served
    _add_error_handlers(app)
    _add_routes(app, served, limit)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"detail": "<one line>"}``; an unexpected one as a 500 whose details stay in the log."""

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        return _error(422, describe_errors(err))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException):
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        logger.exception("convnp.web: unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server's log has the details")


# What POST /api/predict's documentation says each kind of model does with what it is sent.
_PREPARATION = {
    "digits": "Send an image file (multipart field `file`, or the raw bytes as `image/*`) or JSON "
    "`{\"pixels\": [[...28 numbers 0..255...], ... 28 rows]}` with bright ink on black. Either is prepared as "
    "`convnp predict` prepares files: cropped to the ink, scaled into a 20x20 box, centred by its centre of mass on "
    "a 28x28 canvas.",
    "images": "Send an image file (multipart field `file`, or the raw bytes as `image/*`). It is prepared as "
    "`convnp predict` prepares files: brought to the model's channels (colour to grey or grey to RGB), scaled to "
    "cover the model's input keeping its aspect ratio, and cut to it from the centre.",
}
_PAGES = {"digits": "static/index.html", "images": "static/upload.html"}


def _add_routes(app: FastAPI, served: ServedModel, limit: int) -> None:
    """``GET /``, ``GET /api/health``, ``POST /api/predict`` and (a digit model's app) ``POST /api/read``."""
    page = resources.files("convnp.web").joinpath(_PAGES[served.kind]).read_text(encoding="utf-8")
    pixels_json = served.kind == "digits"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/health", response_model=Health)
    def health() -> Health:
        return served.health()

    @app.post(
        "/api/predict",
        response_model=Prediction,
        responses=_documented_errors(served, limit, pixels_json=pixels_json),
        openapi_extra={"requestBody": request_body(pixels_json)},
        summary="Classify one digit" if pixels_json else "Classify one picture",
        description=_PREPARATION[served.kind],
    )
    async def predict(
        request: Request,
        feature_maps: Annotated[bool, Query(description="include the first conv layer's output")] = True,
    ) -> Prediction:
        picture = await read_picture(request, rgb=served.rgb, pixels_json=pixels_json, max_side=served.max_side)
        try:
            return await run_in_threadpool(served.classify, picture, feature_maps)
        except DataError as err:  # a digit model's picture with no ink
            raise HTTPException(400, str(err)) from None

    if served.kind == "digits":
        _add_read_route(app, served, limit)


def _add_read_route(app: FastAPI, served: DigitClassifier, limit: int) -> None:
    """``POST /api/read``: a digit model reads the number written in a picture, digit by digit."""

    @app.post(
        "/api/read",
        response_model=Reading,
        responses=_documented_errors(served, limit, pixels_json=False),
        openapi_extra={"requestBody": request_body(False)},
        summary="Read a number: several digits written in a row",
        description="Send an image file (multipart field `file`, or the raw bytes as `image/*`) of digits written "
        "side by side (a drawing, or a photo of a house number, a year, a postcode). It is read as `convnp read` "
        "reads files: the digits are found left to right (two that touch are cut where their ink is thinnest), each "
        "prepared as `convnp predict` prepares one digit and classified. The answer gives the number, and for each "
        "digit its class, probabilities, box in the picture's pixels and the 28x28 image the network saw.",
    )
    async def read(request: Request) -> Reading:
        picture, size = await read_photo(request, max_side=served.max_side)
        try:
            return await run_in_threadpool(served.read, picture, size)
        except DataError as err:  # no ink found
            raise HTTPException(400, str(err)) from None
