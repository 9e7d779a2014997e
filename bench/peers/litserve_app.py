"""``/swap`` and ``/encode`` with LitServe, as its documentation writes a server: one ``LitAPI`` per
route (``setup``, ``decode_request``, ``predict``, ``encode_response``) and ``LitServer(...).run()``.

python -m bench.peers.litserve_app   (reads PORT; readiness at /health)
"""

# No ``from __future__ import annotations`` here: LitServe reads decode_request's annotation at run
# time, and only the class ``Request`` (not the string) makes it parse the multipart form.
import os
from typing import Any, cast

import litserve as ls
from fastapi import Request, Response
from starlette.datastructures import FormData, UploadFile

from bench.peers.shared import Pipeline


class SwapAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.pipeline = Pipeline()

    def decode_request(self, request: Request) -> tuple[bytes, bytes]:
        form = cast(FormData, request)  # what LitServe passes for a multipart body
        return cast(UploadFile, form["z1_image"]).file.read(), cast(UploadFile, form["z2_image"]).file.read()

    def predict(self, x: tuple[bytes, bytes]) -> bytes:
        return self.pipeline.swap_bytes(*x)

    def encode_response(self, output: bytes) -> Response:
        return Response(content=output, media_type="image/png")


class EncodeAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.pipeline = Pipeline()

    def decode_request(self, request: Request) -> list[bytes]:
        form = cast(FormData, request)  # what LitServe passes for a multipart body
        return [cast(UploadFile, upload).file.read() for upload in form.getlist("image")]

    def predict(self, x: list[bytes]) -> dict[str, Any]:
        return self.pipeline.encode_bytes(x)

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    apis = [SwapAPI(api_path="/swap"), EncodeAPI(api_path="/encode")]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1, timeout=60)
    server.run(host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
