"""Request and response bodies, named by role."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
CodeRow = Annotated[list[FiniteFloat], Field(min_length=1)]
CodeRows = Annotated[list[CodeRow], Field(min_length=1)] | CodeRow


class ErrorResponse(BaseModel):
    """Every error: what is wrong and what to do about it, and a stable code for programs."""

    detail: str = Field(description="what is wrong and what to send instead, for people (wording may change)")
    code: str = Field(description="a stable machine-readable name: see the error codes in docs/api.md")


class DecodeRequest(BaseModel):
    """Codes to decode: equal numbers of rows; a flat vector is one row."""

    # The shipped models' codes have 16 numbers each; zeros are the prior's mean.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"z1": [[0.0] * 16], "z2": [[0.0] * 16]}]}
    )

    z1: CodeRows = Field(description="complementary codes, [rows][z1_dim]")
    z2: CodeRows = Field(description="specified codes, [rows][z2_dim]")


class EncodeResponse(BaseModel):
    model: str
    z1: list[list[float]]
    z2: list[list[float]]
    z1_samples: list[list[float]] | None = Field(None, description="with sample=true: z1 ~ q(z1|x)")
    z2_samples: list[list[float]] | None = Field(None, description="with sample=true: z2 ~ q(z2|x)")


class ImagesResponse(BaseModel):
    model: str
    images: list[str] = Field(description="base64-encoded PNG images, in request order")


class SwapResponse(ImagesResponse):
    z1: list[list[float]] = Field(description="z1 of each z1_image (the codes used)")
    z2: list[list[float]] = Field(description="z2 of each z2_image (the codes used)")


class LatentAxes(BaseModel):
    mean: list[float]
    directions: list[list[float]]
    std: list[float]


class ExampleImage(BaseModel):
    url: str = Field(description="GET this path for the PNG")
    factors: dict[str, Any]


class ModelInfo(BaseModel):
    name: str
    version: str
    description: str
    specified_factors: list[str]
    input_shape: list[int]
    z1_dim: int
    z2_dim: int
    preprocessing: dict[str, Any]
    training_data: dict[str, Any]
    evaluation: dict[str, Any]
    latent_directions: dict[str, LatentAxes] = Field(
        default_factory=dict, description="per code: mean, principal directions and the spread along each"
    )
    examples: list[ExampleImage] = Field(default_factory=list)
    provider: str


class ModelList(BaseModel):
    default_model: str
    models: list[ModelInfo]
    refused: dict[str, str] = Field(default_factory=dict, description="model folders not served, and why")


class Health(BaseModel):
    status: str = Field(description="alive, ready, loading, draining or unavailable")
    models: list[str] = Field(default_factory=list, description="models serving")
    reason: str | None = Field(None, description="why the service is not ready, in words an operator can act on")
