"""The OpenAPI document as real clients need it: what FastAPI generates, made true and usable.

- It asks for an API key exactly when this service checks one: without
  TWOCODE_API_KEYS every route is open, and a document demanding a key would
  mislead generated clients and /docs (contract testers flag it as wrong).
- Uploaded files are ``format: binary`` as well as ``contentMediaType``: FastAPI
  writes only the OpenAPI 3.1 form, which client generators read as a plain
  string, so their clients could not upload an image.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.settings import Settings


def customize(app: FastAPI, settings: Settings) -> None:
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            if not settings.api_keys:
                _drop_security(schema)
            for body in schema.get("components", {}).get("schemas", {}).values():
                _mark_files_binary(body)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _drop_security(schema: dict[str, Any]) -> None:
    schema.get("components", {}).pop("securitySchemes", None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)


def _mark_files_binary(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == "application/octet-stream":
            node["format"] = "binary"
        for value in node.values():
            _mark_files_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_files_binary(value)
