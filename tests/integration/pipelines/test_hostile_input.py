"""A catalog is untrusted input: decompression bombs, links out of the folder, files that keep failing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from annotator_core.media.probe import VideoRefused, probe
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.catalog import scan_catalog
from pipelines.ingest import run_ingest
from pipelines.stages import DecodeJob, decode_title
from va_cli.main import cli

ROOT = Path(__file__).resolve().parents[3]
# Peak resident memory allowed for refusing the bomb, per process (the Python probe and its ffprobe):
# decoding one of its frames took the scoring worker from 0.7 GB to 4.0 GB.
PROBE_RSS_BOUND_MB = 300
BOMB_REFUSAL = "too large: 16000x16000 over the limit of 8294400 pixels (VA_MAX_VIDEO_PIXELS)"

PROBE_IN_A_FRESH_PROCESS = """
import json, resource, sys
from annotator_core.media.probe import VideoRefused, probe
try:
    probe(sys.argv[1], max_duration_s=3600.0, max_pixels=3840 * 2160)
    message = "accepted"
except VideoRefused as exc:
    message = str(exc)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = {"self": int(status["VmHWM"].split()[0]), "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
print(json.dumps({"message": message, "peak_kb": peak}))
"""


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's file: ~750 KB of H.264 holding two 16000x16000 black frames (made with ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required to make the test file (apt-get install -y ffmpeg)")
    path = tmp_path_factory.mktemp("bomb") / "big.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "color=c=black:s=16000x16000:r=1",
         "-frames:v", "2", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    assert path.stat().st_size < 2_000_000
    return path


def test_a_decompression_bomb_is_refused_from_its_metadata_in_bounded_memory(bomb: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE_IN_A_FRESH_PROCESS, str(bomb)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["message"] == BOMB_REFUSAL
    peak_mb = {who: kb / 1024 for who, kb in result["peak_kb"].items()}  # both in KiB on Linux
    assert peak_mb["self"] < PROBE_RSS_BOUND_MB, peak_mb
    assert peak_mb["children"] < PROBE_RSS_BOUND_MB, peak_mb


def test_ingest_refuses_the_bomb_as_one_failed_row(bomb: Path) -> None:
    job = DecodeJob(
        options=None,  # type: ignore[arg-type]  # never reached: the probe refuses first
        max_duration_s=3600.0, max_pixels=3840 * 2160, max_frames=1_000_000, probe_timeout_s=60.0,
        encoder="handcrafted",
    )  # fmt: skip
    batch = pa.Table.from_pylist([{"uri": str(bomb), "size": bomb.stat().st_size, "video_id": "bomb"}])
    rows = [row for table in decode_title(batch, job) for row in table.to_pylist()]
    assert [row["kind"] for row in rows] == ["video"]
    video = json.loads(rows[0]["video"])["record"]
    assert (video["status"], video["error"], video["n_shots"]) == ("failed", BOMB_REFUSAL, 0)


def test_the_frame_count_limit_is_checked_before_decoding(sample_videos_dir: Path) -> None:
    with pytest.raises(VideoRefused, match=r"too many frames: 250 over the limit of 100 \(VA_MAX_VIDEO_FRAMES\)"):
        probe(str(sample_videos_dir / "bikes.mp4"), max_duration_s=3600.0, max_pixels=10**8, max_frames=100)


@pytest.fixture()
def linked_catalog(sample_videos_dir: Path, tmp_path: Path) -> Path:
    """A folder with a real video, a link to it inside the folder, and a link out of it to /etc/passwd."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "bikes.mp4")
    (folder / "same-bikes.mp4").symlink_to(folder / "bikes.mp4")
    (folder / "x.mp4").symlink_to("/etc/passwd")
    return folder


def test_a_link_out_of_the_folder_is_skipped_with_the_reason(linked_catalog: Path) -> None:
    catalog = scan_catalog([str(linked_catalog)])
    assert [e.uri for e in catalog.entries] == [str((linked_catalog / "bikes.mp4").resolve())]
    [(path, why)] = catalog.skipped
    assert path == str(linked_catalog / "x.mp4")
    assert "a link to /etc/passwd, outside" in why and "VA_FOLLOW_EXTERNAL_LINKS=true" in why
    # A glob over the folder keeps to it too; the setting lets an operator follow links on purpose.
    assert [p for p, _ in scan_catalog([str(linked_catalog / "*.mp4")]).skipped] == [str(linked_catalog / "x.mp4")]
    followed = scan_catalog([str(linked_catalog)], follow_external_links=True)
    assert "/etc/passwd" in [e.uri for e in followed.entries] and not followed.skipped


@pytest.mark.usefixtures("ray_local")
def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_ingest(sample_videos_dir: Path, tmp_path: Path) -> None:
    """A Latin-1 name (café.mp4 from an old archive) used to fail the whole run in Ray's catalog step."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "bikes.mp4")
    latin1 = os.fsdecode(bytes(folder) + b"/caf\xe9.mp4")  # a surrogate-escaped str, as os.listdir gives it
    shutil.copy(sample_videos_dir / "bigbuckbunny.mp4", latin1)
    [(path, why)] = scan_catalog([str(folder)]).skipped
    assert path == f"{folder}/caf\\xe9.mp4" and "not UTF-8 text" in why and "convmv" in why
    assert scan_catalog([latin1]).skipped[0][0] == path  # named explicitly: skipped the same way

    settings = Settings(data_dir=tmp_path / "va-data", n_clusters=2)
    summary = run_ingest([str(folder)], settings=settings, encoder_spec="handcrafted")
    assert (summary.videos_done, summary.videos_failed) == (1, 0)
    assert [Path(p).name for p, _ in summary.links_skipped] == ["caf\\xe9.mp4"]
    assert [Path(v["uri"]).name for v in ShotStore.from_settings(settings).videos()] == ["bikes.mp4"]


@pytest.mark.usefixtures("ray_local")
def test_failed_videos_are_retried_only_when_changed_or_asked(linked_catalog: Path, tmp_path: Path) -> None:
    (linked_catalog / "bikes.mp4").unlink()
    (linked_catalog / "same-bikes.mp4").unlink()
    notes = linked_catalog / "notes.mp4"
    notes.write_text("Shot list for reel 3\nINT. KITCHEN - DAY\n" * 50)
    settings = Settings(data_dir=tmp_path / "va-data", n_clusters=2)
    store = ShotStore.from_settings(settings)

    first = run_ingest([str(linked_catalog)], settings=settings, encoder_spec="handcrafted")
    assert (first.videos_failed, first.videos_done) == (1, 0)
    assert [Path(p).name for p, _ in first.links_skipped] == ["x.mp4"]
    uris = [v["uri"] for v in store.videos()]
    assert uris == [str(notes)] and "/etc/passwd" not in uris
    [failed] = store.videos(status="failed")
    assert "a text file" in failed["error"]

    # Unchanged: not probed again, and said so.
    again = run_ingest([str(linked_catalog)], settings=settings, encoder_spec="handcrafted")
    assert (again.videos_total, again.videos_failed, again.videos_skipped, again.failed_before) == (0, 0, 1, 1)
    assert store.videos(status="failed")[0]["ingested_at"] == failed["ingested_at"]

    # Asked: tried again, still one row for the file.
    env = {"VA_DATA_DIR": str(tmp_path / "va-data"), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2"}
    runner = CliRunner()
    asked = runner.invoke(cli, ["ingest", str(linked_catalog), "--retry-failed", "--json"], env=env)
    assert asked.exit_code == 0, asked.output
    summary = json.loads(asked.stdout)
    assert (summary["videos_total"], summary["videos_failed"], summary["failed_before"]) == (1, 1, 0)
    assert [v["ingested_at"] for v in store.videos()] != [failed["ingested_at"]] and len(store.videos()) == 1
    plain = runner.invoke(cli, ["ingest", str(linked_catalog)], env=env)
    assert "1 video(s) failed before and are unchanged: not retried (use --retry-failed)" in plain.output
    assert "skipped: " in plain.stderr and "x.mp4: a link to /etc/passwd" in plain.stderr

    # Changed: a new fingerprint, so it is tried without being asked.
    notes.write_text("still not a video\n" * 80)
    changed = run_ingest([str(linked_catalog)], settings=settings, encoder_spec="handcrafted")
    assert (changed.videos_total, changed.videos_failed, changed.failed_before) == (1, 1, 0)


@pytest.mark.usefixtures("ray_local")
def test_a_model_whose_weights_are_corrupt_stops_ingest_with_one_clear_error(
    sample_videos_dir: Path, tmp_path: Path
) -> None:
    # The driver only describes the model (its config, tokenizer, processor and that weight files exist); the
    # embedding actors load the weights. When they cannot, ingest stops with the model and the cause named.
    from transformers import CLIPImageProcessorPil

    from annotator_core.encoders import load_encoder
    from annotator_core.errors import EncoderUnavailable

    tiny = load_encoder("tiny-clip", device="cpu")
    folder = tmp_path / "saved-clip"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    settings = Settings(data_dir=tmp_path / "va-data", n_clusters=2)
    with pytest.raises(EncoderUnavailable) as raised:
        run_ingest([str(sample_videos_dir / "bikes.mp4")], settings=settings, encoder_spec=f"clip:{folder}")
    message = str(raised.value)
    assert f"could not load encoder 'clip:{folder}'" in message and "SafetensorError" in message
    assert "\n" not in message


def _va_ingest(args: list[str], data_dir: Path, *, as_user: list[str] | None = None) -> subprocess.CompletedProcess:
    """`va ingest` in a process of its own, as a user runs it: its own Ray starts from this command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    env.update(VA_DATA_DIR=str(data_dir), VA_ENCODER="handcrafted", VA_N_CLUSTERS="2")
    command = [*(as_user or []), sys.executable, "-m", "va_cli.main", "ingest", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_a_name_that_is_not_utf8_on_the_command_line_is_skipped_and_strict_says_so(
    sample_videos_dir: Path, tmp_path: Path
) -> None:
    """An unquoted glob hands such a name to `va ingest` itself: Ray's start-up used to fail on it (sys.argv)."""
    good = tmp_path / "bikes.mp4"
    shutil.copy(sample_videos_dir / "bikes.mp4", good)
    latin1 = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.mp4")
    shutil.copy(sample_videos_dir / "bigbuckbunny.mp4", latin1)
    done = _va_ingest([str(good), latin1, "--strict", "--json"], tmp_path / "va-data")
    assert done.returncode == 1, done.stderr[-3000:]  # --strict: a file it was given could not be considered
    summary = json.loads(done.stdout)
    assert (summary["videos_done"], summary["videos_failed"], summary["files_left_out"]) == (1, 0, 1)
    [(path, why)] = summary["links_skipped"]
    assert path == f"{tmp_path}/caf\\xe9.mp4" and "not UTF-8 text" in why and "convmv" in why


def test_a_file_it_cannot_read_is_skipped_and_its_neighbours_ingest(sample_videos_dir: Path, tmp_path: Path) -> None:
    """Permission denied used to drop the file's Ray block from the fingerprint map and end the run (KeyError).

    70 files make blocks of two (the map has at most 64), so the unreadable one shares its block. As root, mode
    000 stops nobody: setpriv drops the capabilities that override it, for the ingest process and its Ray.
    """
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "a-noread.mp4")
    (folder / "a-noread.mp4").chmod(0)
    shutil.copy(sample_videos_dir / "carphone_pristine.mp4", folder / "b-carphone.mp4")
    for i in range(68):  # the same content under other names: fingerprinted, then skipped as duplicates
        shutil.copy(sample_videos_dir / "carphone_pristine.mp4", folder / f"copy-{i:02d}.mp4")
    caps = "-dac_override,-dac_read_search"
    as_user = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"] if os.geteuid() == 0 else []
    done = _va_ingest([str(folder), "--json"], tmp_path / "va-data", as_user=as_user)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["videos_done"], summary["videos_skipped"], summary["files_left_out"]) == (1, 68, 1)
    assert summary["links_skipped"] == [
        [str(folder / "a-noread.mp4"), "permission denied: cannot read it; check its owner and mode (chmod)"]
    ]


def test_a_folder_it_cannot_list_is_named_not_passed_over(sample_videos_dir: Path, tmp_path: Path) -> None:
    """A subfolder of mode 000 was passed over without a word (Path.rglob skips what it cannot list), so its
    videos were missing from the catalog and --strict still exited 0. A disk's own lost+found is not worth one."""
    folder = tmp_path / "catalog"
    (folder / "locked").mkdir(parents=True)
    (folder / "lost+found").mkdir()
    (folder / "no-entry").mkdir()  # can be listed, not entered (`chmod -R 644`): a traceback, the whole run lost
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "open.mp4")
    shutil.copy(sample_videos_dir / "carphone_pristine.mp4", folder / "locked" / "inside.mp4")
    shutil.copy(sample_videos_dir / "carphone_pristine.mp4", folder / "no-entry" / "inside.mp4")
    (folder / "no-entry" / "notes.txt").write_text("not a video")
    caps = "-dac_override,-dac_read_search"
    as_user = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"] if os.geteuid() == 0 else []
    modes = {folder / "locked": 0, folder / "lost+found": 0, folder / "no-entry": 0o644}
    for locked, mode in modes.items():
        locked.chmod(mode)
    try:
        done = _va_ingest([str(folder), "--dry-run", "--json"], tmp_path / "va-data", as_user=as_user)
        named = _va_ingest([str(folder / "no-entry" / "inside.mp4"), "--dry-run", "--json"], tmp_path / "va-data",
                           as_user=as_user)  # fmt: skip
    finally:
        for locked in modes:
            locked.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["planned"] == [str(folder / "open.mp4")] and summary["files_left_out"] == 2
    [(locked, why), (no_entry, why_not)] = summary["links_skipped"]
    assert locked == str(folder / "locked") and why.startswith("permission denied: a folder this user cannot list")
    assert no_entry == str(folder / "no-entry") and "can list but not enter" in why_not and "chmod +x" in why_not
    # named alone, it is the only file given: one clear usage error with the reason, no traceback
    assert named.returncode == 2 and "Traceback" not in named.stderr, named.stderr[-3000:]
    assert f"{folder / 'no-entry' / 'inside.mp4'}: permission denied: a folder on its way can be listed but not " in (
        named.stderr
    )


@pytest.mark.usefixtures("ray_local")
def test_a_symlink_loop_or_a_link_to_nothing_is_skipped_and_the_rest_ingest(
    sample_videos_dir: Path, tmp_path: Path
) -> None:
    """`ln -s self.mp4 self.mp4` in a catalog folder used to end the run (RuntimeError from Path.resolve)."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "bikes.mp4")
    (folder / "self.mp4").symlink_to("self.mp4")
    (folder / "a.mp4").symlink_to("b.mp4")
    (folder / "b.mp4").symlink_to("a.mp4")
    (folder / "gone.mp4").symlink_to(folder / "deleted.mp4")
    loop = "a symlink loop; remove or fix the link"
    expected = [
        [str(folder / "a.mp4"), loop],
        [str(folder / "b.mp4"), loop],
        [str(folder / "gone.mp4"), f"a link to {folder / 'deleted.mp4'}, which does not exist; remove or fix the link"],
        [str(folder / "self.mp4"), loop],
    ]
    env = {"VA_DATA_DIR": str(tmp_path / "va-data"), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2"}
    runner = CliRunner()
    strict = runner.invoke(cli, ["ingest", str(folder), "--strict", "--json"], env=env, catch_exceptions=False)
    assert strict.exit_code == 1, strict.output  # four files of the folder could not be considered
    summary = json.loads(strict.stdout)
    assert (summary["videos_done"], summary["files_left_out"], summary["links_skipped"]) == (1, 4, expected)
    # Named on the command line, a loop is skipped the same way, not "does not exist".
    plain = runner.invoke(cli, ["ingest", str(folder / "self.mp4"), str(folder / "bikes.mp4")], env=env)
    assert plain.exit_code == 0, plain.output
    assert f"skipped: {folder / 'self.mp4'}: {loop}" in plain.stderr
    assert (
        "0 failed, 1 skipped (already done or duplicate content), 1 file(s) or folder(s) left out (named above)."
        in plain.stdout
    )
