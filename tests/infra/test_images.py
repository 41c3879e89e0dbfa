"""The container images' recipes, checked without a Docker engine (none on these machines).

What can be checked statically is checked: multi-stage builds, a non-root final user, pinned base
images and versions that equal the tested environment's, no secrets in ENV/ARG, and build inputs
that exist and are not excluded by the per-Dockerfile ignore file.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import dockerfile
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
DOCKERFILES = ("Dockerfile.worker", "Dockerfile.annotation", "Dockerfile.scoring")
SECRET_WORDS = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE)", re.IGNORECASE)


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) as Docker's own Dockerfile parser (BuildKit's, via `dockerfile`) reads them."""
    return [(c.cmd.upper(), " ".join([*c.flags, *c.value])) for c in dockerfile.parse_file(str(DOCKER / name))]


def build_args(name: str) -> dict[str, str]:
    return dict(arg.split("=", 1) for word, arg in instructions(name) if word == "ARG" and "=" in arg)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_multi_stage_non_root_and_pinned(name: str) -> None:
    steps = instructions(name)
    args = build_args(name)
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2, f"{name} is not multi-stage"
    for spec in froms:
        image = spec.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if image.startswith("${") or image.split(":")[0] in {"base", "build", "uv"} or image.startswith("base-"):
            continue  # an earlier stage of this file
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: base image {image} is not pinned to a version"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{name} runs as root"
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert any(word == "USER" for word, _ in steps[last_from:]), f"{name}: the final stage sets no USER"


def baked_secrets(steps: list[tuple[str, str]]) -> list[str]:
    """Names of ENV/ARG variables that look like credentials."""
    names: list[str] = []
    for word, rest in steps:
        if word in {"ENV", "ARG"}:
            names += [
                k for k in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)[=\s]", rest + " ") if SECRET_WORDS.search(k)
            ]
    return names


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_secrets_baked_in(name: str) -> None:
    assert baked_secrets(instructions(name)) == []


def test_secret_check_sees_a_baked_key() -> None:
    parsed = dockerfile.parse_string("FROM x:1\nENV AWS_SECRET_ACCESS_KEY=abc REGION=eu\nARG DB_PASSWORD\n")
    steps = [(c.cmd.upper(), " ".join([*c.flags, *c.value])) for c in parsed]
    assert baked_secrets(steps) == ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_versions_equal_the_tested_environment(name: str) -> None:
    args = build_args(name)
    assert args["TORCH_VERSION"] == metadata.version("torch").split("+")[0]
    if "RAY_VERSION" in args:
        assert args["RAY_VERSION"] == metadata.version("ray")
    if "PYTHON_VERSION" in args:
        assert args["PYTHON_VERSION"].startswith("3.11.")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_inputs_exist_and_are_in_the_context(name: str) -> None:
    ignore = [
        line for line in (DOCKER / f"{name}.dockerignore").read_text().splitlines() if line and not line.startswith("#")
    ]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert ignore[0] == "*", "the ignore file should be an allowlist"
    for word, rest in instructions(name):
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{name}: COPY {source} does not exist"
                assert source.rstrip("/") in allowed, f"{name}: COPY {source} is excluded by {name}.dockerignore"


def test_lock_pins_the_installed_runtime_dependencies() -> None:
    """requirements.lock equals the environment the tests ran in (regenerate with lock_runtime.py)."""
    pins = {}
    for line in (DOCKER / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    assert {"ray", "lancedb", "pylance", "bentoml", "transformers", "eva-decord", "scenedetect"} <= set(pins)
    stale = {n: (v, metadata.version(n)) for n, v in pins.items() if metadata.version(n) != v}
    assert not stale, f"requirements.lock is stale (pinned, installed): {stale}; run infra/docker/lock_runtime.py"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runtime_stage_has_the_native_libraries_opencv_links(name: str) -> None:
    """opencv-python (pinned in the lock, needed by PySceneDetect and the handcrafted encoder) links libGL and glib."""
    steps = instructions(name)
    assert any(line.startswith("opencv-python==") for line in (DOCKER / "requirements.lock").read_text().splitlines())
    apt = " ".join(rest for word, rest in steps if word == "RUN" and "apt-get install" in rest)
    assert "libgl1" in apt.split() and "libglib2.0-0" in apt.split(), f"{name} lacks opencv's libGL/glib"
