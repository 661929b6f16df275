"""The draw-a-digit web app: a page, a prediction endpoint and a health check around one loaded checkpoint.

FastAPI is imported in :mod:`convnp.web` only: here, and in :mod:`convnp.web.decode`, which turns a request's body
into the grey picture of its digit. Predictions come from a :class:`convnp.inference.Classifier`, as
``convnp predict``'s do. Routes:

- ``GET /``: the page (``static/index.html``): draw a digit, see the prediction, the ten probabilities and the
  first convolution's feature maps of the drawing;
- ``POST /api/predict``: one digit, as an image file (multipart field ``file``, or the raw bytes with an
  ``image/*`` content type) or as JSON ``{"pixels": 28 rows of 28 numbers 0..255}``; returns the label, its
  ``class`` (the checkpoint's name for it), the probabilities and (unless ``?feature_maps=false``) the first Conv2D layer's output (after its ReLU);
- ``GET /api/health``: ``{"status": "ok", "model": ..., "parameters": n}``;
- ``GET /docs``: the OpenAPI documentation (FastAPI's default).

Both kinds of input are prepared as ``convnp predict`` prepares files (:func:`~convnp.data.images.preprocess_digit`:
ink found whatever its polarity, cropped, scaled into a 20x20 box, centred by its centre of mass on 28x28). For the
JSON array this means a raw 28x28 downsample of a drawing works as well as an MNIST-prepared digit, which the
preparation leaves nearly unchanged.

Every error a client can cause is a 4xx with ``{"detail": "<one line>"}``: 400 (empty body, not an image, no
ink), 413 (body over :data:`MAX_BODY_BYTES`, by its Content-Length header and by the bytes actually received;
image over :data:`~convnp.data.image_files.MAX_PIXELS` pixels, from its header before decoding), 415 (unsupported
content type), 422 (JSON that does not match the schema, bad query parameters). Anything unexpected is a 500 with
a fixed message; tracebacks never reach the client.
"""

from __future__ import annotations

import base64
import logging
from importlib import resources
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from convnp.data.image_files import MAX_PIXELS
from convnp.data.images import preprocess_digit
from convnp.errors import DataError
from convnp.inference import MNIST_SHAPE, Classifier
from convnp.layers import Conv2D, ReLU
from convnp.ops.activations import softmax
from convnp.web.decode import REQUEST_BODY, describe_errors, read_digit

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (1 MiB): a 280x280 drawing as PNG is a few kB, a 28x28 JSON array under 10 kB.
MAX_BODY_BYTES = 1 << 20

logger = logging.getLogger("convnp.web")


# ---- schemas ---------------------------------------------------------------------------------------------------------
class FeatureMaps(BaseModel):
    """The first Conv2D layer's output (after its ReLU, if one follows) for the digit, each map scaled on its own
    to 0..255."""

    layer: str = Field(description="which layer's output, e.g. '1: ReLU()' after '0: Conv2D(...)'")
    shape: list[int] = Field(min_length=3, max_length=3, description="[H, W, C]")
    encoding: Literal["base64-uint8"] = "base64-uint8"
    data: str = Field(description="base64 of H*W*C bytes in (H, W, C) order (C varies fastest)")


class Prediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    label: int = Field(description="the most probable class")
    class_name: str = Field(alias="class", description="the most probable class's name, from the checkpoint "
                            "(a digit model's are its digits, \"0\" .. \"9\")")
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



# ---- the model -------------------------------------------------------------------------------------------------------
class DigitClassifier:
    """A checkpoint loaded once, classifying one grey picture per call; safe to call from many threads at once.

    The server classifies concurrent requests in Starlette's thread pool; the :class:`~convnp.inference.Classifier`
    inside runs each thread's own replica of the model (a model's layers reuse scratch buffers, so one model must
    not run in two threads at once).
    """

    def __init__(self, checkpoint_path):
        self.classifier = Classifier.from_checkpoint(checkpoint_path)
        checkpoint = self.classifier.checkpoint
        if self.classifier.input_shape != MNIST_SHAPE:
            raise ValueError(
                f"{checkpoint.path}: the page draws 28x28 digits, but this model takes images of shape "
                f"{self.classifier.input_shape} (H, W, C); serve a model trained on MNIST"
            )
        self.name = str(checkpoint.meta.get("model_name") or checkpoint.path.stem)
        self.n_params = int(self.classifier.model.n_params)
        # Feature maps: the first Conv2D's output, after its ReLU when one follows (so black means "not found here").
        layers = self.classifier.model.layers
        conv = next((i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)), None)
        if conv is not None and conv + 1 < len(layers) and isinstance(layers[conv + 1], ReLU):
            conv += 1
        self.maps_index = conv

    def classify(self, grey: np.ndarray, feature_maps: bool) -> Prediction:
        """A picture ``(H, W)`` in 0..255 -> the prediction; raises DataError when it holds no ink."""
        digit = preprocess_digit(grey)  # (28, 28), 0..255
        outputs = self.classifier.activations(digit[None, :, :, None])  # every layer's, for (1, 28, 28, 1)
        maps = None
        if feature_maps and self.maps_index is not None:
            layer = self.classifier.model.layers[self.maps_index]
            maps = self._encode_maps(outputs[self.maps_index][0], f"{self.maps_index}: {layer!r}")  # (H, W, C)
        probs = softmax(np.asarray(outputs[-1], dtype=np.float64), axis=1)[0]  # (K,)
        label = int(np.argmax(probs))
        return Prediction(label=label, class_name=self.classifier.class_names[label],
                          probabilities=[float(p) for p in probs], feature_maps=maps)

    @staticmethod
    def _encode_maps(a: np.ndarray, layer: str) -> FeatureMaps:
        """Each channel of ``a`` `(H, W, C)` min-max scaled to 0..255 on its own (a flat map is all 0)."""
        a = a.astype(np.float64)
        low = a.min(axis=(0, 1), keepdims=True)  # (1, 1, C)
        span = a.max(axis=(0, 1), keepdims=True) - low
        scaled = np.where(span > 0, (a - low) / np.where(span > 0, span, 1.0), 0.0) * 255.0
        data = np.round(scaled).astype(np.uint8)  # (H, W, C)
        return FeatureMaps(layer=layer, shape=list(data.shape), data=base64.b64encode(data.tobytes()).decode("ascii"))


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
    """Load ``checkpoint_path`` (a ``.npz`` file or a run folder) once and build the app around it.

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) for a checkpoint that cannot be loaded, and
    ``ValueError`` for a model that does not take 28x28x1 digits.
    """
    classifier = DigitClassifier(checkpoint_path)
    app = FastAPI(
        title="convnp digits",
        description=f"Draw a digit and see what the model `{classifier.name}` makes of it. Errors are "
        '`{"detail": "..."}` with a 4xx status.',
        version="1",
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.classifier = classifier
    _add_error_handlers(app)
    _add_routes(app, classifier)
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


def _add_routes(app: FastAPI, classifier: DigitClassifier) -> None:
    """``GET /``, ``GET /api/health`` and ``POST /api/predict``."""
    page = resources.files("convnp.web").joinpath("static/index.html").read_text(encoding="utf-8")

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
        grey = await read_digit(request)
        try:
            return await run_in_threadpool(classifier.classify, grey, feature_maps)
        except DataError as err:  # no ink
            raise HTTPException(400, str(err)) from None
