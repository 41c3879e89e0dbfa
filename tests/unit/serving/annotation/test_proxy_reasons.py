"""What an annotator reads when a shot cannot play: the reason, without the server's paths."""

from __future__ import annotations

from serving.annotation.media import _without_paths


def test_a_reason_names_folders_and_files_by_role_not_by_path() -> None:
    reason = _without_paths(
        "ffmpeg could not make a proxy: /srv/catalog/film.mxf: Invalid data found when processing input",
        source="/srv/catalog/film.mxf",
        proxy_root="/var/va/proxies",
    )
    assert reason == "ffmpeg could not make a proxy: the source file: Invalid data found when processing input"
    stored = _without_paths(
        "the proxy could not be stored in /var/va/proxies (No space left on device)",
        source="/srv/catalog/film.mxf",
        proxy_root="/var/va/proxies",
    )
    assert stored == "the proxy could not be stored in VA_PROXY_DIR (No space left on device)"
    paths = {"source": "/srv/catalog/film.mxf", "proxy_root": "/var/va/proxies"}
    other = _without_paths("libx264 failed: open /tmp/x264_2pass.log: denied", **paths)
    assert other == "libx264 failed: open <path>: denied"
    assert _without_paths("codec h/w not available", **paths) == "codec h/w not available"
