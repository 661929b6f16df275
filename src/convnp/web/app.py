"""The draw-a-digit web app: a page, a prediction endpoint and a health check around one loaded checkpoint.

FastAPI is imported here and nowhere else in convnp. Routes:

- ``GET /``: the page (``static/index.html``): draw a digit, see the prediction, the ten probabilities and the
  first convolution's feature maps of the drawing;
- ``POST /api/predict``: one digit, as an image file (multipart field ``file``, or the raw bytes with an
  ``image/*`` content type) or as JSON ``{"pixels": 28 rows of 28 numbers 0..255}``; returns the label, the
  probabilities and (unless ``?feature_maps=false``) the first Conv2D layer's output (after its ReLU);
- ``GET /api/health``: ``{"status": "ok", "model": ..., "parameters": n}``;
- ``GET /docs``: the OpenAPI documentation (FastAPI's default).

Both kinds of input are prepared as ``convnp predict`` prepares files (:func:`~convnp.data.images.preprocess_digit`:
ink found whatever its polarity, cropped, scaled into a 20x20 box, centred by its centre of mass on 28x28). For the
JSON array this means a raw 28x28 downsample of a drawing works as well as an MNIST-prepared digit, which the
preparation leaves nearly unchanged.

Every error a client can cause is a 4xx with ``{"detail": "<one line>"}``: 400 (empty body, not an image, no
ink), 413 (body over :data:`MAX_BODY_BYTES`, by its Content-Length header and by the bytes actually received;
image over :data:`~convnp.data.images.MAX_PIXELS` pixels, from its header before decoding), 415 (unsupported
content type), 422 (JSON that does not match the schema, bad query parameters). Anything unexpected is a 500 with
a fixed message; tracebacks never reach the client.
"""

from __future__ import annotations

import base64
import logging
import threading
from importlib import resources
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from convnp.checkpoint import load_checkpoint
from convnp.cli.predict import MNIST_SHAPE, _to_stored_scale
from convnp.data.images import MAX_PIXELS, preprocess_digit
from convnp.errors import DataError
from convnp.layers import Conv2D, ReLU
from convnp.ops.activations import softmax
from convnp.web.decode import ImageTooLargeError, read_image_bytes

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (1 MiB): a 280x280 drawing as PNG is a few kB, a 28x28 JSON array under 10 kB.
MAX_BODY_BYTES = 1 << 20

SIDE = 28  # the JSON array's side: MNIST's
logger = logging.getLogger("convnp.web")


# ---- schemas ---------------------------------------------------------------------------------------------------------
Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]


class PixelsRequest(BaseModel):
    """A digit as a 28x28 array: ink bright (up to 255) on a dark background (0); prepared like an image file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE, description="28 rows of 28 numbers 0..255")]


class FeatureMaps(BaseModel):
    """The first Conv2D layer's output (after its ReLU, if one follows) for the digit, each map scaled on its own
    to 0..255."""

    layer: str = Field(description="which layer's output, e.g. '1: ReLU()' after '0: Conv2D(...)'")
    shape: list[int] = Field(min_length=3, max_length=3, description="[H, W, C]")
    encoding: Literal["base64-uint8"] = "base64-uint8"
    data: str = Field(description="base64 of H*W*C bytes in (H, W, C) order (C varies fastest)")


class Prediction(BaseModel):
    label: int = Field(description="the most probable class")
    probabilities: list[float] = Field(description="one per class, summing to 1")
    feature_maps: FeatureMaps | None = Field(default=None, description="null with ?feature_maps=false")


class Health(BaseModel):
    status: Literal["ok"]
    model: str = Field(description="the model's name (from the checkpoint, else the file name)")
    parameters: int = Field(description="number of trainable parameters")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong with the request")


ERRORS = {
    400: {"model": ErrorResponse, "description": "Empty body, not an image, damaged image, or no ink found"},
    413: {"model": ErrorResponse, "description": f"Body over {MAX_BODY_BYTES:,} bytes, or image over "
                                                 f"{MAX_PIXELS:,} pixels"},
    415: {"model": ErrorResponse, "description": "Content type is not JSON, multipart/form-data or image/*"},
    422: {"model": ErrorResponse, "description": "JSON or query parameters that do not match the schema"},
}

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


# ---- the model ---------------------------------------------------------------------------------------------------------
class DigitClassifier:
    """A checkpoint loaded once, classifying one grey picture per call; safe to call from many threads at once.

    The server classifies concurrent requests in Starlette's thread pool. A layer is not safe to share between
    threads: Conv2D reuses scratch buffers (its ``workspace``) from call to call, inference included, so two
    concurrent forwards through one layer overwrite each other's im2col matrix and both get wrong answers. Each
    thread therefore runs its own :meth:`~convnp.model.Sequential.replica` of the model: the parameter arrays are
    shared (read only), the buffers are not.
    """

    def __init__(self, checkpoint_path):
        self.checkpoint = load_checkpoint(checkpoint_path)
        self.model = self.checkpoint.model
        self._local = threading.local()  # .model: this thread's replica
        input_shape = tuple(self.model.input_shape) if self.model.input_shape else MNIST_SHAPE
        if input_shape != MNIST_SHAPE:
            raise ValueError(
                f"{self.checkpoint.path}: the page draws 28x28 digits, but this model takes images of shape "
                f"{input_shape} (H, W, C); serve a model trained on MNIST"
            )
        self.standardize = self.checkpoint.standardize
        self.name = str(self.checkpoint.meta.get("model_name") or self.checkpoint.path.stem)
        self.n_params = int(self.model.n_params)
        # Feature maps: the first Conv2D's output, after its ReLU when one follows (so black means "not found here").
        layers = self.model.layers
        conv = next((i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)), None)
        if conv is not None and conv + 1 < len(layers) and isinstance(layers[conv + 1], ReLU):
            conv += 1
        self.maps_index = conv

    def classify(self, grey: np.ndarray, feature_maps: bool) -> Prediction:
        """A picture ``(H, W)`` in 0..255 -> the prediction; raises DataError when it holds no ink."""
        digit = preprocess_digit(grey)  # (28, 28), 0..255
        x = self.checkpoint.prepare(_to_stored_scale(digit[None, :, :, None], self.standardize))  # (1, 28, 28, 1)
        maps = None
        for i, layer in enumerate(self._thread_model().layers):
            x = layer.forward(x)  # training=False: nothing kept for a backward pass
            if i == self.maps_index and feature_maps:
                maps = self._encode_maps(x[0], f"{i}: {layer!r}")  # (H, W, C)
        probs = softmax(np.asarray(x, dtype=np.float64), axis=1)[0]  # (K,)
        return Prediction(label=int(np.argmax(probs)), probabilities=[float(p) for p in probs], feature_maps=maps)

    def _thread_model(self):
        """This thread's replica of the model, made on its first call (a few kB: the buffers for one image)."""
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = self.model.replica()
        return model

    @staticmethod
    def _encode_maps(a: np.ndarray, layer: str) -> FeatureMaps:
        """Each channel of ``a`` `(H, W, C)` min-max scaled to 0..255 on its own (a flat map is all 0)."""
        a = a.astype(np.float64)
        low = a.min(axis=(0, 1), keepdims=True)  # (1, 1, C)
        span = a.max(axis=(0, 1), keepdims=True) - low
        scaled = np.where(span > 0, (a - low) / np.where(span > 0, span, 1.0), 0.0) * 255.0
        data = np.round(scaled).astype(np.uint8)  # (H, W, C)
        return FeatureMaps(layer=layer, shape=list(data.shape), data=base64.b64encode(data.tobytes()).decode("ascii"))


# ---- body size limit -----------------------------------------------------------------------------------------------------
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
                await _error(413, f"request body of {n:,} bytes is over the {self.limit:,} accepted")(scope, receive, send)
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


def _describe(err: ValidationError | RequestValidationError) -> str:
    """Pydantic's errors -> one line: ``pixels[3][5]: Input should be less than or equal to 255; ...``."""
    parts = []
    for e in err.errors()[:5]:
        loc = ""
        for item in e.get("loc", ()):
            loc += f"[{item}]" if isinstance(item, int) else (f".{item}" if loc else str(item))
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    more = len(err.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# ---- the app ---------------------------------------------------------------------------------------------------------------
def create_app(checkpoint_path) -> FastAPI:
    """Load ``checkpoint_path`` (a ``.npz`` file or a run folder) once and build the app around it.

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) for a checkpoint that cannot be loaded, and
    ``ValueError`` for a model that does not take 28x28x1 digits.
    """
    classifier = DigitClassifier(checkpoint_path)
    page = resources.files("convnp.web").joinpath("static/index.html").read_text(encoding="utf-8")

    app = FastAPI(
        title="convnp digits",
        description=f"Draw a digit and see what the model `{classifier.name}` makes of it. Errors are "
        '`{"detail": "..."}` with a 4xx status.',
        version="1",
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.classifier = classifier

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        return _error(422, _describe(err))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException):
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        logger.exception("convnp.web: unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server's log has the details")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", model=classifier.name, parameters=classifier.n_params)

    @app.post(
        "/api/predict",
        response_model=Prediction,
        responses=ERRORS,
        openapi_extra={"requestBody": REQUEST_BODY},
        summary="Classify one digit",
        description="Send an image file (multipart field `file`, or the raw bytes as `image/*`) or JSON "
        "`{\"pixels\": [[...28 numbers 0..255...], ... 28 rows]}` with bright ink on black. Either is prepared as "
        "`convnp predict` prepares files: cropped to the ink, scaled into a 20x20 box, centred by its centre of "
        "mass on a 28x28 canvas.",
    )
    async def predict(
        request: Request,
        feature_maps: Annotated[bool, Query(description="include the first conv layer's output")] = True,
    ) -> Prediction:
        grey = await _read_digit(request)
        try:
            return await run_in_threadpool(classifier.classify, grey, feature_maps)
        except DataError as err:  # no ink
            raise HTTPException(400, str(err)) from None

    return app


async def _read_digit(request: Request) -> np.ndarray:
    """The request's digit as a grey picture ``(H, W)`` in 0..255, or an HTTPException saying what is wrong."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
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
        data = await upload.read()
        return await run_in_threadpool(_decode, data)
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty request body; send an image file or JSON {\"pixels\": [[...], ...]}")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            pixels = PixelsRequest.model_validate_json(body).pixels
        except ValidationError as err:
            raise HTTPException(422, _describe(err)) from None
        return np.asarray(pixels, dtype=np.float64)  # (28, 28)
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return await run_in_threadpool(_decode, body)
    raise HTTPException(
        415, f"unsupported content type {content_type or '(none)'!r}; send application/json, multipart/form-data "
        "(field 'file') or image/*"
    )


def _decode(data: bytes) -> np.ndarray:
    try:
        return read_image_bytes(data)
    except ImageTooLargeError as err:
        raise HTTPException(413, str(err)) from None
    except DataError as err:
        raise HTTPException(400, str(err)) from None
