"""Dependencies as Annotated aliases: the registry, the chosen model, the settings, API keys.

All ``async def``: FastAPI runs a plain ``def`` dependency on its thread pool,
and these never block, so a thread hop each (four per request) was pure cost
(bench/results/pipeline_ab.md).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.errors import ApiError
from service.runtime import LoadedModel, Registry
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]


def key_is_valid(given: str, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit that would leak which)."""
    given_bytes = given.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    return matched


# Declared as security schemes, so the OpenAPI document and /docs ("Authorize") offer both ways.
_KEY_HELP = "needed only where the operator configured API keys (TWOCODE_API_KEYS)"
api_key_header = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", description=_KEY_HELP, auto_error=False)
bearer = HTTPBearer(scheme_name="Bearer", description=f"the API key as a bearer token; {_KEY_HELP}", auto_error=False)


async def require_api_key(
    settings: SettingsDep,
    header_key: Annotated[str | None, Security(api_key_header)] = None,
    bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> None:
    """With keys configured, accept ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""
    if not settings.api_keys:
        return
    given = header_key or (bearer_key.credentials.strip() if bearer_key else "")
    if not given or not key_is_valid(given, settings.api_keys):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong API key: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def get_model(
    registry: RegistryDep,
    settings: SettingsDep,
    model: Annotated[
        str | None, Query(description="model name (default: the configured default model)", max_length=64)
    ] = None,
) -> LoadedModel:
    if not registry.ready:
        raise ApiError(503, "loading", "models are still loading; retry shortly", headers={"Retry-After": "1"})
    name = model or settings.default_model
    found = registry.models.get(name)
    if found is None:
        known = ", ".join(registry.names()) or "none"
        raise ApiError(404, "unknown_model", f"unknown model {name!r}; known models: {known}")
    return found


ModelDep = Annotated[LoadedModel, Depends(get_model)]
