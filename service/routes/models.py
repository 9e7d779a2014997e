"""/models and /models/{name}: what the repository serves."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from service.deps import RegistryDep, SettingsDep, require_api_key
from service.errors import ApiError
from service.routes.inference import ERRORS
from service.runtime import LoadedModel, Registry
from service.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(require_api_key)])


@router.get("", response_model=ModelList, responses={401: ERRORS[401]}, summary="List the served models")
async def list_models(registry: RegistryDep, settings: SettingsDep) -> ModelList:
    """Every model serving, with its manifest's facts and the execution provider in use."""
    infos = [ModelInfo(**registry.models[name].describe()) for name in registry.names()]
    return ModelList(default_model=settings.default_model, models=infos, refused=registry.refused)


@router.get(
    "/{name}",
    response_model=ModelInfo,
    responses={401: ERRORS[401], 404: ERRORS[404], 422: ERRORS[422]},
    summary="Describe one model",
)
async def get_model_info(name: str, registry: RegistryDep) -> ModelInfo:
    return ModelInfo(**_served(name, registry).describe())


@router.get(
    "/{name}/examples/{file_name}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        401: ERRORS[401],
        404: ERRORS[404],
        422: ERRORS[422],
    },
    summary="Get an example image of a model",
)
async def get_example(name: str, file_name: str, registry: RegistryDep) -> FileResponse:
    """A sample image shipped with the model (listed in its manifest)."""
    model = _served(name, registry)
    listed = {e.file for e in model.manifest.examples}
    relative = f"examples/{file_name}"
    if relative not in listed:  # only listed files: no path tricks reach the disk
        raise ApiError(404, "unknown_example", f"model {name!r} has no example {file_name!r}")
    return FileResponse(model.folder / relative, media_type="image/png")


def _served(name: str, registry: Registry) -> LoadedModel:
    model = registry.models.get(name)
    if model is None:
        known = ", ".join(registry.names()) or "none"
        raise ApiError(404, "unknown_model", f"unknown model {name!r}; known models: {known}")
    return model
