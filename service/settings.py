"""Service settings: environment variables with the TWOCODE_ prefix (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "TWOCODE_"


class Settings(BaseSettings):
    """Every knob of the service. Limits exist so that no request can take the process down."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # Where and what to serve
    model_repository: Path = Field(Path("models"), description="folder of model folders (NAME/manifest.json, ...)")
    default_model: str = Field("colormnist-digit", description="the model a request without ?model= gets")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="cuda: the GPU or refuse to serve; auto: the GPU where ONNX Runtime offers it"
    )
    # One thread per session: with ORT's default (one per core) a worker pinned to a core ran
    # /encode at half the speed (bench/results/variants.md). Raise it when one worker owns many cores.
    intra_op_threads: int = Field(1, ge=0, description="ONNX Runtime threads per session (0 = ORT's default)")
    load_before_serving: bool = Field(
        False,
        description="finish loading the models before start-up completes (Ray Serve replicas), instead of "
        "answering 503 on /readyz meanwhile",
    )
    inter_op_threads: int = Field(1, ge=0)

    # Dynamic batching
    max_batch_size: int = Field(64, ge=1, le=4096)
    # 0: a batch runs as soon as the session is free, taking every row that queued while the previous
    # batch ran. Waiting 2 ms for company doubled latency at concurrency 1 and did not raise
    # throughput at 32 (bench/results/variants.md); a window only pays when runs are long (GPU).
    max_queue_delay_ms: float = Field(0.0, ge=0.0, le=60000.0)
    max_queue_size: int = Field(1024, ge=1, description="rows waiting per network before 503")
    # A lone request's CPU run this small (images x pixels per image) runs on the event loop instead
    # of a worker thread: the two thread hops cost more than the run (bench/results/inline_runs_ab.md).
    # 0: always a worker thread.
    inline_run_pixels: int = Field(
        8_192, ge=0, description="CPU runs of at most this many input pixels skip the hop to a worker thread"
    )
    fast_swap: bool = Field(
        True,
        description="answer ordinary one-pair /swap requests without FastAPI's request machinery "
        "(service/fast_paths.py; anything else goes to the route as before)",
    )
    fast_encode: bool = Field(
        True,
        description="answer ordinary /encode requests (image files, no sample) without FastAPI's request "
        "machinery (service/fast_paths.py; anything else goes to the route as before)",
    )
    batching: Literal["app", "serve"] = Field(
        "app",
        description="whose queue batches requests: the app's own, or Ray Serve's @serve.batch (only under "
        "service.ray_serve; see bench/results/ray_batching.md for which is faster)",
    )

    # Limits
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(16_777_216, ge=1, description="width * height, checked before decoding")
    max_images_per_request: int = Field(256, ge=1)
    max_concurrency: int = Field(
        64, ge=1, description="inference requests in flight before 503; a request counts once its body has arrived"
    )
    # Slow clients: a connection trickling an upload holds nothing a complete request needs, and
    # only for a bounded time (nginx's client_body_timeout and keepalive_timeout play these parts).
    body_timeout_s: float = Field(
        60.0, gt=0.0, description="a request body not complete this long after the request began gets 408"
    )
    max_connections: int = Field(
        2048, ge=1, description="open connections per worker (uvicorn's limit_concurrency); beyond them, 503"
    )
    keep_alive_timeout_s: int = Field(5, ge=1, description="seconds before an idle keep-alive connection is closed")
    max_output_size: int = Field(1024, ge=1, description="bound of the `size` query parameter")
    retry_after_s: int = Field(1, ge=1)

    # Access and logs
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="the least severe line logged")
    log_json: bool = Field(False, description="one JSON object per log line, for log collectors")

    # Process
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=1, le=65535, description="port to listen on")
    workers: int = Field(1, ge=1, description="server processes; metrics add up across them")
    drain_timeout_s: float = Field(20.0, ge=0.0, description="on SIGTERM: wait this long for requests in flight")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed to call the API from a browser (none by default)"
    )

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """TWOCODE_API_KEYS="key1,key2" (and TWOCODE_CORS_ORIGINS): comma-separated; blanks are dropped."""
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
