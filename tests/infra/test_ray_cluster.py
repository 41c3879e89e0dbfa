"""`va ingest` on a real multi-process Ray cluster gives the same tables as a local run.

Two Ray nodes are started as separate processes on loopback — a head (`ray start --head`) and a
second node (`ray start --address …`) with its own resources — in a private temp folder, so no
other Ray on this machine sees them. The RayJob's own entrypoint (from k8s/base/ingest-rayjob.yaml,
`va ingest --address auto …`) then ingests real footage on that cluster the way KubeRay runs it —
on the head's machine, with RAY_ADDRESS set by the job submission — and its tables must equal a
local run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
VA = str(BIN / "va")

# Two `ray start`s, the cluster coming up and two ingests, each bounded by its own timeout, can pass 300 s in all.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


# Every port a node opens is 0: each Ray process binds a port of the kernel's choosing itself and reports it, so
# two nodes on one host (and other tests) never collide, and no port is picked free and released before use.
NODE_PORTS = [
    "--node-manager-port=0",
    "--object-manager-port=0",
    "--metrics-export-port=0",
    "--dashboard-agent-listen-port=0",
    "--dashboard-agent-grpc-port=0",
    "--runtime-env-agent-port=0",
]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "RAY_ADDRESS"))}
    # RAY_AUTH_MODE=disabled as in the RayJob's pods (k8s/base/ingest-rayjob.yaml): the cluster's
    # processes trust each other on a private network instead of sharing a token file.
    env.update(RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled")
    return env


def processes_of(temp_dir: str) -> list[psutil.Process]:
    """The Ray processes of this cluster (their command lines name its temp folder) and their children."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def stop_cluster(temp_dir: str) -> None:
    """Stop exactly this cluster's processes, by pid (never `ray stop`, which would end every Ray here)."""
    procs = processes_of(temp_dir)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture()
def ray_cluster() -> Iterator[str]:
    """A two-node Ray cluster on 127.0.0.1 (1 CPU each; the second node also has `worker_node`); yields its address."""
    # Ray's socket paths must stay short, so not under pytest's long tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="va-ray-", dir="/tmp")
    common = ["--temp-dir", temp_dir, "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    try:
        head = ray_start(
            "--head", "--port=0", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false", *common, *NODE_PORTS
        )
        # The GCS bound a port of its own; `ray start` prints the address to join (Ray's drivers parse this line too).
        joined = re.search(r"ray start --address='([^']+)'", head)
        assert joined, f"`ray start --head` printed no address to join:\n{head[-3000:]}"
        address = joined.group(1)
        ray_start(
            f"--address={address}", "--num-cpus=1", "--num-gpus=0", '--resources={"worker_node": 1}',
            *common, *NODE_PORTS,
        )  # fmt: skip
        wait_for_nodes(address, 2)
        yield address
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def ray_start(*args: str) -> str:
    """`ray start` with these arguments; its output (stdout and stderr)."""
    result = subprocess.run([RAY, "start", *args], env=base_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"ray start {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def wait_for_nodes(address: str, n: int) -> None:
    """Until the cluster reports n nodes with 2 CPUs and the second node's resource (bounded)."""
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        result = subprocess.run(
            [RAY, "status", f"--address={address}"], env=base_env(), capture_output=True, text=True, timeout=60
        )
        status = result.stdout
        if "2.0 CPU" in status.replace("/2.0 CPU", " 2.0 CPU") and "worker_node" in status:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not come up with {n} nodes:\n{status}")


def ingest(args: list[str], data_dir: Path, *, env_extra: dict[str, str] | None = None) -> dict:
    env = base_env()
    env.update(VA_DATA_DIR=str(data_dir), VA_ENCODER="handcrafted", **(env_extra or {}))
    result = subprocess.run(
        [VA, "ingest", "--json", *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, f"va ingest {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    out = result.stdout
    return json.loads(out[out.index("{") :])


def tables(data_dir: Path) -> tuple[list[tuple], dict[str, np.ndarray]]:
    from annotator_core.shot_store import ShotStore

    store = ShotStore(str(data_dir / "lancedb"))
    videos = sorted(
        (v["video_id"], v["uri"], v["status"], v["n_shots"], v["n_frames"], v["encoder"]) for v in store.videos()
    )
    vectors = store.vectors()
    shots = store.get_shots(list(vectors.ids), columns=["start_frame", "end_frame", "video_id"])
    rows = sorted((s["shot_id"], s["video_id"], s["start_frame"], s["end_frame"]) for s in shots)
    by_id = {sid: vectors.matrix[i] for sid, i in vectors.index_of().items()}
    return videos + rows, by_id


def test_ingest_on_a_two_node_cluster_equals_a_local_run(
    ray_cluster: str, sample_videos_dir: Path, tmp_path: Path
) -> None:
    if not (BIN / "va").exists() or shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("the `va` and `ray` commands are not installed in this environment")
    # Two real titles (six shots and one), small enough to keep the test to about a minute a run.
    footage = [str(sample_videos_dir / "bikes.mp4"), str(sample_videos_dir / "carphone_pristine.mp4")]

    # The RayJob's own entrypoint, run as KubeRay runs it: the driver finds the cluster via RAY_ADDRESS.
    job = yaml.safe_load((ROOT / "k8s" / "base" / "ingest-rayjob.yaml").read_text())
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["va", "ingest"] and argv[-1].startswith("s3://") and "--address" in argv
    on_cluster = ingest([*argv[2:-1], *footage], tmp_path / "cluster", env_extra={"RAY_ADDRESS": ray_cluster})
    local = ingest(footage, tmp_path / "local")
    assert on_cluster["videos_done"] == local["videos_done"] == 2
    assert on_cluster["videos_failed"] == local["videos_failed"] == 0
    assert on_cluster["shots"] == local["shots"] > 0

    cluster_rows, cluster_vectors = tables(tmp_path / "cluster")
    local_rows, local_vectors = tables(tmp_path / "local")
    assert cluster_rows == local_rows
    assert cluster_vectors.keys() == local_vectors.keys()
    for sid, vector in local_vectors.items():
        np.testing.assert_allclose(cluster_vectors[sid], vector, atol=1e-5, err_msg=sid)
