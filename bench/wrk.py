"""Drive Debian's ``wrk`` (a compiled HTTP load generator) with a prebuilt request.

The bench's own asyncio load generator saturates its core before our server
does at concurrency 8 and above, so its figures measure the client. wrk, in C,
pinned to its own core, does not. A request (method, path, headers, body with
binary PNGs) travels to wrk as a Lua script; its ``--latency`` report is parsed
into requests/s and percentiles.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

WRK = shutil.which("wrk")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def lua_script(method: str, body: bytes, content_type: str) -> str:
    """A wrk script that sends this body with this content type (binary bytes escaped as \\ddd)."""
    escaped = "".join(f"\\{b:03d}" for b in body)
    return f'wrk.method = "{method}"\nwrk.headers["Content-Type"] = "{content_type}"\nwrk.body = "{escaped}"\n'


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    """requests/s, p50, p99, the request count and non-2xx/socket errors from ``wrk --latency``."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    done = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rate and done and p50 and p99):
        raise ValueError(f"unexpected wrk output: {output[-500:]}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return WrkResult(float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(done.group(1)), errors)


def run_wrk(
    url: str, body: bytes, content_type: str, concurrency: int, seconds: float, core: int | None = None
) -> WrkResult:
    """``concurrency`` connections on one wrk thread for ``seconds``, optionally pinned to ``core``."""
    if WRK is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script("POST", body, content_type))
        command = [WRK, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url]
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse(done.stdout)
