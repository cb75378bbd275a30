"""A bad or unusual source gets the right one-line
error naming the user's file, or is handled and logged; never a stretched picture."""

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import av
import cv2
import ffmpeg
import numpy as np
import pytest
from conftest import ROOT, run
from videos import cut_in_half, encode, scene_frames

from vsr.data.index import build_index
from vsr.fs import sha256sum
from vsr.media.download import download
from vsr.media.io import MediaError, link_source, probe, run_ffmpeg
from vsr.media.scenes import read_scenes, split_scenes
from vsr.media.transcode import transcode


def split(src, tmp, **kw):
    logs = []
    rows = split_scenes(
        src, tmp / "scenes", tmp / "scenes.csv", min_scene_len=5, val_every=3, log=logs.append, **kw
    )
    return rows, "\n".join(logs)


def test_truncated_source_fails_at_the_source_step_naming_the_file(tmp_path):
    half = cut_in_half(encode(tmp_path / "full.mp4", scene_frames()), tmp_path / "half.mp4")
    with pytest.raises(MediaError, match=r"half\.mp4: truncated \(header lists 45 frames, file holds \d+\)"):
        link_source(half, tmp_path / "source.mp4")
    assert not (tmp_path / "source.mp4").exists()
    (tmp_path / "link.mp4").symlink_to(half)  # the split names the user's file behind data/source.mp4
    with pytest.raises(MediaError, match=rf"link\.mp4 \(= {half}\): truncated"):
        split(tmp_path / "link.mp4", tmp_path)


def test_variable_frame_rate_is_named_and_retimed_at_split(tmp_path):
    src = encode(tmp_path / "vfr.mp4", scene_frames(), steps_ms=[33, 33, 66])
    assert probe(src)["vfr"]
    rows, log = split(src, tmp_path)
    assert "variable frame rate" in log and "every frame kept once" in log
    assert [(r["start_frame"], r["frames"]) for r in rows] == [(0, 15), (15, 15), (30, 15)]
    for r in rows:  # constant rate now: the exact keyframe index accepts every scene
        assert build_index(tmp_path / "scenes" / f"{r['scene']}.mp4").frames == 15
    # a constant rate stored as whole milliseconds (33, 34, 33 ms) is no VFR: exact 30 fps scenes
    src = encode(tmp_path / "ms.mp4", scene_frames(), steps_ms=[33, 34, 33])
    rows, log = split(src, tmp_path)
    assert "variable frame rate" not in log and probe(tmp_path / "scenes/scene_001.mp4")["fps"] == 30
    assert build_index(tmp_path / "scenes/scene_001.mp4").frames == 15


def test_odd_size_is_cropped_by_one_pixel_and_ffmpeg_errors_keep_the_cause(tmp_path):
    src = encode(tmp_path / "odd.mp4", scene_frames(641, 361), pix_fmt="yuv444p")
    rows, log = split(src, tmp_path)
    assert "odd size 641x361: cropped to 640x360" in log
    info = probe(tmp_path / "scenes" / "scene_000.mp4")
    assert (info["width"], info["height"], info["pix_fmt"]) == (640, 360, "yuv420p")
    with pytest.raises(MediaError) as e:  # the same encode without the crop: ffmpeg's own words
        run_ffmpeg(
            ffmpeg.input(str(src)).output(str(tmp_path / "x.mp4"), pix_fmt="yuv420p"), "odd.mp4: encode"
        )
    assert "width not divisible by 2 (641x361)" in str(e.value) and "\n" not in str(e.value)


def test_portrait_source_is_cropped_not_stretched(tmp_path):
    frames = scene_frames(180, 320, scenes=1, n=2)
    src = encode(tmp_path / "portrait.mp4", frames)
    logs = []
    transcode(src, tmp_path / "540p.mp4", "540p", crf=10, preset="ultrafast", log=logs.append)
    assert "aspect 180x320 differs" in logs[0] and "centre-cropped to 960x540" in logs[0]
    got = next(av.open(str(tmp_path / "540p.mp4")).decode(video=0)).to_ndarray(format="rgb24").astype(float)
    first = next(av.open(str(src)).decode(video=0)).to_ndarray(format="rgb24")
    cover = cv2.resize(first, (960, 1707), interpolation=cv2.INTER_CUBIC)[584:1124].astype(float)
    stretched = cv2.resize(first, (960, 540), interpolation=cv2.INTER_CUBIC).astype(float)
    err_cover, err_stretch = np.abs(got - cover).mean(), np.abs(got - stretched).mean()
    assert got.shape == (540, 960, 3) and err_cover < 2 and err_stretch > 10 * err_cover


def test_short_last_scene_is_dropped_and_said(tmp_path):
    rows, log = split(encode(tmp_path / "s.mp4", scene_frames(tail=2)), tmp_path)
    assert [(r["split"], r["frames"]) for r in rows] == [
        ("train", 15),
        ("train", 15),
        ("val", 15),
        ("dropped", 2),
    ]
    assert "scene_003: dropped, 2 frames < 5" in log
    assert not (tmp_path / "scenes/scene_003.mp4").exists()
    assert [r["scene"] for r in read_scenes(tmp_path / "scenes.csv")] == [
        "scene_000",
        "scene_001",
        "scene_002",
    ]
    with pytest.raises(MediaError, match=r"4 scenes \(4 shorter than 16 frames\) cannot give both"):
        split(tmp_path / "s.mp4", tmp_path, min_frames=16)  # windows longer than every scene


def test_url_serving_a_non_video_leaves_nothing(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "v.mp4").write_text("<html>not found</html>\n")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=root))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url, out = f"http://127.0.0.1:{httpd.server_address[1]}/v.mp4", tmp_path / "data/source.mp4"
    try:
        with pytest.raises(MediaError, match=r"v\.mp4: downloaded file is not a usable video .*; deleted"):
            download(url, out)
        assert list(out.parent.iterdir()) == []
        encode(root / "v.mp4", scene_frames(scenes=1, n=3))  # the server is fixed: a rerun works
        assert probe(download(url, out))["frames"] == 3
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("kind,key", [("file", "path"), ("url", "url")])
def test_schema_requires_path_or_url_per_kind(tmp_path, kind, key):
    cmd = [
        "snakemake",
        "-n",
        "--directory",
        str(tmp_path),
        "--configfile",
        str(ROOT / "tests/config/tiny.yaml"),
    ]
    r = run([*cmd, "--config", f"source={{kind: {kind}}}"], timeout=120)
    assert r.returncode != 0 and f"'{key}' is a required property" in r.stdout + r.stderr


def test_script_rule_error_is_one_line_on_the_console(tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video\n")
    (tmp_path / "src.yaml").write_text(f"source: {{kind: file, path: {tmp_path / 'clip.mp4'}}}\n")
    cfg = [str(ROOT / "tests/config/tiny.yaml"), str(tmp_path / "src.yaml")]
    r = run(["snakemake", "--cores", "1", "--directory", str(tmp_path), "--configfile", *cfg, "--", "data"])
    assert r.returncode != 0
    want = f"rule link_source: {tmp_path / 'clip.mp4'}: not a readable video (Invalid data found"
    assert any(x.startswith(want) for x in r.stderr.splitlines()), r.stderr[-2000:]


def test_y4m_claiming_a_huge_size_is_one_clear_line(tmp_path):
    bad = tmp_path / "big.y4m"
    bad.write_bytes(b"YUV4MPEG2 W60000 H60000 F30:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(100_000))
    with pytest.raises(MediaError) as e:
        probe(bad)
    assert str(e.value) == (
        f"{bad}: its y4m header claims 60000x60000 frames, too large to decode (at most 268435456 pixels)"
    )


def test_source_smaller_than_a_resolution_is_refused_not_magnified(tmp_path):
    src = encode(tmp_path / "small.mp4", scene_frames(640, 272))
    with pytest.raises(
        MediaError, match=r"^source 640x272 is smaller than 540p and 720p; drop 540p and 720p"
    ):
        split(src, tmp_path, resolutions=["540p", "720p"])
    assert not (tmp_path / "scenes").exists() and not (tmp_path / "scenes.csv").exists()
    rows, _ = split(encode(tmp_path / "ok.mp4", scene_frames(1280, 720)), tmp_path, resolutions=["720p"])
    assert len(rows) == 3 and rows[0]["source_sha256"] == sha256sum(tmp_path / "ok.mp4")
