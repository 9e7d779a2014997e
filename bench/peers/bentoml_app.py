"""``/swap`` and ``/encode`` with BentoML, as its documentation writes a service: a class under
``@bentoml.service`` whose ``@bentoml.api`` methods take and return PIL images (BentoML decodes the
multipart uploads and encodes the PNG answer itself).

bentoml serve bench.peers.bentoml_app:TwoCode --host 127.0.0.1 --port PORT   (readiness at /readyz)
"""

from __future__ import annotations

from typing import Any

import bentoml
from PIL.Image import Image

from bench.peers.shared import Pipeline, to_pil


# Access logs off, as for every server in the bench (ours runs with warning-level logs).
@bentoml.service(workers=1, traffic={"timeout": 60}, logging={"access": {"enabled": False}})
class TwoCode:
    def __init__(self) -> None:
        self.pipeline = Pipeline()

    @bentoml.api(route="/swap")
    def swap(self, z1_image: Image, z2_image: Image) -> Image:
        return to_pil(self.pipeline.swap_images(z1_image, z2_image))

    @bentoml.api(route="/encode")
    def encode(self, image: list[Image]) -> dict[str, Any]:
        return self.pipeline.encode_images(image)
