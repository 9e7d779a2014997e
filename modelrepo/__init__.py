"""The model-repository format shared by the trainer and the service.

This package is the only code both sides import: the manifest schema, the
file hashing that guards it, and the preprocessing rule that turns any image
into the model's input. It depends on numpy, Pillow and pydantic alone, never
on torch or ONNX Runtime.
"""

from modelrepo.manifest import (
    MANIFEST_NAME,
    ImageShape,
    Manifest,
    ManifestError,
    file_sha256,
    load_manifest,
    verify_files,
)
from modelrepo.preprocess import PreprocessError, Preprocessing, to_model_input

__all__ = [
    "MANIFEST_NAME",
    "ImageShape",
    "Manifest",
    "ManifestError",
    "PreprocessError",
    "Preprocessing",
    "file_sha256",
    "load_manifest",
    "to_model_input",
    "verify_files",
]
