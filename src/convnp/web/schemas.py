"""The JSON the web app answers with, as pydantic models: FastAPI checks each answer against them and publishes them
in the OpenAPI document (``/openapi.json``), which tests/test_web_fuzz.py holds every answer to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DigitRead", "ErrorResponse", "FeatureMaps", "Health", "Prediction", "PreparedImage", "Reading",
           "TopClass"]


class FeatureMaps(BaseModel):
    """The first Conv2D layer's output (after its ReLU, if one follows) for the picture, each map scaled on its own
    to 0..255."""

    layer: str = Field(description="which layer's output, e.g. '1: ReLU()' after '0: Conv2D(...)'")
    shape: list[int] = Field(min_length=3, max_length=3, description="[H, W, C]")
    encoding: Literal["base64-uint8"] = "base64-uint8"
    data: str = Field(description="base64 of H*W*C bytes in (H, W, C) order (C varies fastest)")


class PreparedImage(BaseModel):
    """The picture as the model was given it: the upload or drawing prepared (a digit model's: the 28x28 digit
    found, cropped, scaled and centred as MNIST's; any other's: its channels, scaled and centre-cropped), before
    standardisation, rounded to whole pixels 0..255."""

    shape: list[int] = Field(min_length=3, max_length=3, description="[H, W, C] of the model's input")
    encoding: Literal["base64-uint8"] = "base64-uint8"
    data: str = Field(description="base64 of H*W*C bytes in (H, W, C) order (C varies fastest)")


class TopClass(BaseModel):
    """One of the most probable classes."""

    model_config = ConfigDict(populate_by_name=True)

    label: int = Field(description="the class's index into probabilities")
    class_name: str = Field(alias="class", description="the class's name, from the checkpoint")
    probability: float = Field(description="its probability")


class Prediction(BaseModel):
    """The answer to ``POST /api/predict``: the most probable class, every probability, the top 5, the feature maps."""

    model_config = ConfigDict(populate_by_name=True)

    label: int = Field(description="the most probable class")
    class_name: str = Field(alias="class", description="the most probable class's name, from the checkpoint "
                            "(a digit model's are its digits, \"0\" .. \"9\")")
    probabilities: list[float] = Field(description="one per class, summing to 1")
    top: list[TopClass] = Field(description="the 5 most probable classes (all of them with fewer than 5), most "
                                "probable first; ties: the lower label first")
    feature_maps: FeatureMaps | None = Field(default=None, description="null with ?feature_maps=false")
    prepared: PreparedImage | None = Field(default=None, description="what the model was given (the page shows it)")


class DigitRead(BaseModel):
    """One digit of a number read: its class, probabilities, where it is and what the network saw."""

    model_config = ConfigDict(populate_by_name=True)

    label: int = Field(description="the most probable class")
    class_name: str = Field(alias="class", description="its name, from the checkpoint (a digit model's: the digit)")
    probability: float = Field(description="the most probable class's probability")
    probabilities: list[float] = Field(description="one per class, summing to 1")
    box: list[int] = Field(min_length=4, max_length=4, description="[top, left, bottom, right], inclusive, in the "
                           "pixels of the picture sent (its size is the answer's 'size')")
    prepared: PreparedImage = Field(description="the digit as the network saw it: 28x28, prepared as MNIST's digits")


class Reading(BaseModel):
    """The answer to ``POST /api/read``: the number written in the picture, and each of its digits, left to right."""

    number: str = Field(description="the digits' class names, left to right, joined")
    digits: list[DigitRead] = Field(min_length=1, description="one per digit found, left to right")
    size: list[int] = Field(min_length=2, max_length=2, description="[height, width] of the picture sent, turned "
                            "upright by its EXIF orientation as it was read: the pixels the boxes are in")


class Health(BaseModel):
    """The answer to ``GET /api/health``: the model served and the pictures it takes."""

    status: Literal["ok"]
    model: str = Field(description="the model's name (from the checkpoint, else the file name)")
    parameters: int = Field(description="number of trainable parameters")
    kind: Literal["digits", "images"] = Field(
        description="'digits': a 28x28x1 model, shown the drawing pad, each picture prepared as MNIST's digits; "
        "'images': any other, shown the upload page, each picture scaled to cover its input and centre-cropped")
    input_shape: list[int] = Field(min_length=3, max_length=3, description="[H, W, C] of the model's input")
    classes: list[str] = Field(description="the class names, label i being classes[i]")


class ErrorResponse(BaseModel):
    """A 4xx answer: one line saying what was wrong with the request."""

    detail: str = Field(description="what was wrong with the request")
