"""/encode, /decode and /swap."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile

from service.deps import ModelDep, SettingsDep, require_api_key
from service.errors import ApiError
from service.images import ImageError, encode_images, to_base64_png, to_inputs, to_png
from service.runtime import LoadedModel
from service.schemas import DecodeRequest, EncodeResponse, ErrorResponse, ImagesResponse, SwapResponse
from service.settings import Settings

IMAGE_ERROR_CODES = {400: "invalid_image", 413: "too_large", 415: "unsupported_media_type"}

router = APIRouter(tags=["inference"], dependencies=[Depends(require_api_key)])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "not an image, or a truncated or corrupt one",
        401: "API keys are configured and none or a wrong one was given",
        404: "unknown model",
        413: "body, image or image count over the configured limit",
        415: "an image type the service does not read",
        422: "missing fields, wrong code sizes, unequal counts, NaN or infinity",
        503: "over the concurrency or queue bound, or still loading; see Retry-After",
    }.items()
}


def _image_or_json(model_class: type, description: str) -> dict[int | str, dict[str, Any]]:
    """A PNG, or ``model_class`` as JSON: "model" makes FastAPI define the schema the JSON refers to."""
    return {
        200: {
            "model": model_class,
            "description": description,
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **ERRORS,
    }


SizeQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description="upscale the output so its long side is this many pixels (at most the configured max_output_size)",
    ),
]


def _check_size(size: int | None, settings: Settings) -> None:
    if size is not None and size > settings.max_output_size:
        raise HTTPException(422, f"size {size} is over the limit of {settings.max_output_size}")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _read_images(files: list[UploadFile], field: str, model: LoadedModel, settings: Settings) -> np.ndarray:
    if len(files) > settings.max_images_per_request:
        raise HTTPException(
            413, f"{len(files)} files in {field!r}; at most {settings.max_images_per_request} per request"
        )
    payloads = [await f.read() for f in files]
    labels = [f"{field}[{i}] ({f.filename or 'unnamed'})" for i, f in enumerate(files)]
    try:
        return await to_inputs(payloads, labels, model.manifest.preprocessing, settings.max_image_pixels)
    except ImageError as exc:
        raise ApiError(exc.status, IMAGE_ERROR_CODES[exc.status], str(exc)) from exc


def _rows(values: list[list[float]] | list[float], name: str, dim: int) -> np.ndarray:
    if not values:
        raise HTTPException(422, f"{name} is empty; send at least one row of {dim} numbers")
    rows = [values] if not isinstance(values[0], list) else values
    if any(len(r) != dim for r in rows):
        sizes = sorted({len(r) for r in rows})
        raise HTTPException(422, f"{name} rows must have {dim} numbers for this model; got {sizes}")
    return np.asarray(rows, dtype=np.float32)


async def _png_or_json(
    images: np.ndarray, model: LoadedModel, request: Request, size: int | None, extra: dict[str, Any] | None = None
) -> Response:
    if len(images) == 1 and not _wants_json(request):
        (png,) = await encode_images(images, size, to_png)
        return Response(png, media_type="image/png")
    encoded = await encode_images(images, size, to_base64_png)
    body: ImagesResponse = (
        SwapResponse(model=model.name, images=encoded, **extra)
        if extra
        else ImagesResponse(model=model.name, images=encoded)
    )
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")


@router.post("/encode", response_model=EncodeResponse, responses=ERRORS, summary="Encode images into codes")
async def encode(
    model: ModelDep,
    settings: SettingsDep,
    image: Annotated[
        list[UploadFile], File(min_length=1, description="one or more images (PNG, JPEG, WebP, BMP, GIF)")
    ],
    sample: Annotated[bool, Query(description="also draw z ~ q(z|x)")] = False,
) -> EncodeResponse:
    """The codes (posterior means) of each uploaded image, in upload order."""
    batch = await _read_images(image, "image", model, settings)
    codes = await model.encode(batch)
    response = EncodeResponse(model=model.name, z1=codes["z1"].tolist(), z2=codes["z2"].tolist())
    if sample:
        rng = np.random.default_rng()
        for name in ("z1", "z2"):
            std = np.exp(0.5 * codes[f"{name}_logvar"])
            setattr(response, f"{name}_samples", (codes[name] + std * rng.standard_normal(std.shape)).tolist())
    return response


@router.post(
    "/decode",
    responses=_image_or_json(ImagesResponse, "one image as PNG, or JSON for several"),
    response_class=Response,
    summary="Decode codes into images",
)
async def decode(
    model: ModelDep, settings: SettingsDep, request: Request, body: DecodeRequest, size: SizeQuery = None
) -> Response:
    """G(z1, z2) for each row. One row gives image/png unless JSON is asked for with Accept."""
    _check_size(size, settings)
    z1 = _rows(body.z1, "z1", model.manifest.z1_dim)
    z2 = _rows(body.z2, "z2", model.manifest.z2_dim)
    if len(z1) != len(z2):
        raise HTTPException(422, f"z1 has {len(z1)} rows and z2 {len(z2)}; send equal numbers")
    if len(z1) > settings.max_images_per_request:
        raise HTTPException(413, f"{len(z1)} rows; at most {settings.max_images_per_request} per request")
    images = await model.decode(z1, z2)
    return await _png_or_json(images, model, request, size)


@router.post(
    "/swap",
    responses=_image_or_json(SwapResponse, "the swap as PNG, or JSON for several pairs"),
    response_class=Response,
    summary="Swap the specified factors between images",
)
async def swap(
    model: ModelDep,
    settings: SettingsDep,
    request: Request,
    z1_image: Annotated[
        list[UploadFile], File(min_length=1, description="images that keep their complementary factors")
    ],
    z2_image: Annotated[list[UploadFile], File(min_length=1, description="images that give their specified factors")],
    size: SizeQuery = None,
) -> Response:
    """Redraw each z1_image with the specified factors of the z2_image at the same position."""
    _check_size(size, settings)
    if len(z1_image) != len(z2_image):
        raise HTTPException(
            422,
            f"{len(z1_image)} z1_image files and {len(z2_image)} z2_image files; "
            "send equal numbers (pairs are matched by position)",
        )
    a = await _read_images(z1_image, "z1_image", model, settings)
    b = await _read_images(z2_image, "z2_image", model, settings)
    images, z1, z2 = await model.swap(a, b)
    return await _png_or_json(images, model, request, size, extra={"z1": z1.tolist(), "z2": z2.tolist()})
