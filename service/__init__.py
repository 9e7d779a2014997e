"""The HTTP service: FastAPI over ONNX Runtime sessions. It never imports torch."""
