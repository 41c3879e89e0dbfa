"""A shot's real video streamed with HTTP range requests, and its thumbnail, by shot id only."""

from __future__ import annotations

from va_testing import assert_error


def test_range_requests_return_the_right_bytes(service) -> None:
    viewer = service.client("vic")
    data = service.video_path.read_bytes()
    size = len(data)
    shot = service.media_shots[1]

    whole = viewer.get(f"/api/shots/{shot}/video")
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    assert int(whole.headers["content-length"]) == size and whole.content == data
    assert float(whole.headers["x-shot-start"]) == 3.0 and float(whole.headers["x-shot-end"]) == 6.0

    part = viewer.get(f"/api/shots/{shot}/video", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    assert part.content == data[100:1100]

    tail = viewer.get(f"/api/shots/{shot}/video", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert tail.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"

    open_ended = viewer.get(f"/api/shots/{shot}/video", headers={"Range": f"bytes={size - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-10:]

    past_end = viewer.get(f"/api/shots/{shot}/video", headers={"Range": f"bytes={size + 1}-"})
    assert assert_error(past_end, 416, "range_not_satisfiable")["size"] == size

    # A range the server does not understand is ignored (RFC 9110): the whole file.
    odd = viewer.get(f"/api/shots/{shot}/video", headers={"Range": "lines=1-2"})
    assert odd.status_code == 200 and len(odd.content) == size


def test_video_of_a_shot_whose_file_is_gone_is_a_clear_404(service) -> None:
    error = assert_error(service.client("vic").get("/api/shots/digits00:0/video"), 404, "video_unavailable")
    assert "re-ingest" in error["message"]


def test_thumbnail_is_the_stored_jpeg(service) -> None:
    viewer = service.client("vic")
    r = viewer.get("/api/shots/digits00:0/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8"
    assert_error(viewer.get(f"/api/shots/{service.media_shots[0]}/thumbnail"), 404, "not_found")
    assert_error(viewer.get("/api/shots/digits00:999999/thumbnail"), 404, "not_found")
