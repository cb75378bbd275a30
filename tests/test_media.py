import hashlib
import json
import logging

import av
import numpy as np
import pytest
from loopback import serve

from vsr.media.download import download, sha256sum
from vsr.media.io import MediaError, probe
from vsr.media.scenes import read_scenes, split_scenes
from vsr.media.synth import synthesize
from vsr.media.transcode import extract_frames, transcode


def test_scene_split_finds_true_cuts(synth, tmp_path):
    src, cuts = synth
    rows = split_scenes(src, tmp_path / "scenes", tmp_path / "scenes.csv", val_every=2, log=lambda m: None)
    assert [r["start_frame"] for r in rows[1:]] == cuts
    assert [r["split"] for r in rows] == ["train", "val", "train", "val"]
    assert read_scenes(tmp_path / "scenes.csv")[2]["scene"] == "scene_002"
    for r in rows:  # scene files hold exactly their frames
        assert probe(tmp_path / "scenes" / f"{r['scene']}.mp4")["frames"] == r["frames"]


def test_transcode_properties_and_frames(synth, tmp_path):
    src, _ = synth
    out = tmp_path / "540p.mp4"
    transcode(src, out, "540p", crf=20, preset="ultrafast", keyframe_interval=4)
    info = probe(out)
    assert (info["width"], info["height"], info["pix_fmt"], info["codec"]) == (960, 540, "yuv420p", "h264")
    with av.open(str(out)) as c:
        keys = [i for i, p in enumerate(c.demux(c.streams.video[0])) if p.size and p.is_keyframe]
    assert keys == list(range(0, info["frames"], 4))
    n = extract_frames(out, tmp_path / "frames")
    assert n == info["frames"] == len(list((tmp_path / "frames").glob("*.png")))


def test_no_cut_is_an_error_and_leaves_nothing(tmp_path):
    src = tmp_path / "one.mp4"
    synthesize(src, tmp_path / "c.json", 320, 180, 30, scenes=1, seconds_per_scene=1, seed=0)
    with pytest.raises(MediaError, match=r"one\.mp4: no scene cut found"):
        split_scenes(src, tmp_path / "scenes", tmp_path / "scenes.csv")
    assert not (tmp_path / "scenes").exists() and not (tmp_path / "scenes.csv").exists()


@pytest.mark.parametrize("kind", ["truncated", "text", "missing"])
def test_bad_inputs_give_one_line_errors(synth, tmp_path, kind):
    src, _ = synth
    bad = tmp_path / f"{kind}.mp4"
    if kind == "truncated":
        bad.write_bytes(src.read_bytes()[:2000])
    elif kind == "text":
        bad.write_text("this is not a video\n")
    with pytest.raises(MediaError) as e:
        transcode(bad, tmp_path / "out.mp4", "540p")
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg
    assert not (tmp_path / "out.mp4").exists()


@pytest.fixture
def video_bytes(synth):
    return synth[0].read_bytes()  # a real video: downloads are decode-checked


def test_download_success_resume_and_mismatch(video_bytes, tmp_path):
    want = hashlib.sha256(video_bytes).hexdigest()
    srv = serve(video_bytes)
    try:
        out = tmp_path / "a" / "source.mp4"
        download(srv.url, out, want)
        assert sha256sum(out) == want and srv.ranges == [None]
        # resume: a partial file with the first half is continued with a Range request
        out2 = tmp_path / "b" / "source.mp4"
        out2.parent.mkdir()
        part = out2.with_name("source.mp4.part")
        half = len(video_bytes) // 2
        part.write_bytes(video_bytes[:half])
        srv.sent = 0
        download(srv.url, out2, want)
        assert srv.ranges[-1] == f"bytes={half}-" and srv.sent == len(video_bytes) - half
        assert sha256sum(out2) == want and not part.exists()
        # mismatch: partial deleted, no final output, message names the URL
        out3 = tmp_path / "c" / "source.mp4"
        with pytest.raises(MediaError, match=f"{srv.url}: sha256 mismatch"):
            download(srv.url, out3, "0" * 64)
        assert not out3.exists() and not out3.with_name("source.mp4.part").exists()
    finally:
        srv.shutdown()


def test_download_cut_at_half_is_detected_and_resumed(video_bytes, tmp_path):
    srv = serve(video_bytes, "cut")
    try:
        out = download(srv.url, tmp_path / "source.mp4")
    finally:
        srv.shutdown()
    half = len(video_bytes) // 2
    assert srv.ranges == [None, f"bytes={half}-"]  # the second request continues the partial
    assert out.read_bytes() == video_bytes


def test_stalled_download_names_url_timeout_and_key_and_keeps_the_bytes(video_bytes, tmp_path):
    srv = serve(video_bytes, "stall", pause=5)
    out = tmp_path / "source.mp4"
    try:
        with pytest.raises(MediaError) as e:
            download(srv.url, out, timeout=1)
    finally:
        srv.shutdown()
    part = out.with_name("source.mp4.part")
    assert str(e.value) == (
        f"{srv.url}: no data for 1 s (source.timeout); 1000 bytes kept in {part}, a rerun resumes"
    )
    assert part.read_bytes() == video_bytes[:1000] and not out.exists()


def test_trickling_download_hits_the_deadline_and_shows_progress(video_bytes, tmp_path):
    lines = []
    handler = logging.Handler()
    handler.emit = lambda r: lines.append(r.getMessage())
    logging.getLogger("vsr.media").addHandler(handler)
    srv = serve(video_bytes, "trickle", pause=0.2)
    out = tmp_path / "source.mp4"
    try:
        with pytest.raises(MediaError, match=r"not finished after 2 s \(source\.deadline\); \d+ bytes kept"):
            download(srv.url, out, timeout=5, deadline=2, progress_every=0.5)
    finally:
        logging.getLogger("vsr.media").removeHandler(handler)
        srv.shutdown()
    assert 5 <= out.with_name("source.mp4.part").stat().st_size <= 15
    assert any(x.startswith("download source.mp4: 0.0 MB of ") for x in lines), lines


def test_synthetic_is_deterministic(tmp_path):
    a = synthesize(tmp_path / "a.mp4", tmp_path / "a.json", 160, 90, 30, 2, 0.3, seed=4)
    b = synthesize(tmp_path / "b.mp4", tmp_path / "b.json", 160, 90, 30, 2, 0.3, seed=4)
    assert a == b == json.loads((tmp_path / "a.json").read_text())["cuts"]
    fa = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / "a.mp4")).decode(video=0)]
    fb = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / "b.mp4")).decode(video=0)]
    assert len(fa) == len(fb) == 18 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
