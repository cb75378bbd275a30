import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pytest

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
def server(tmp_path, synth):
    root = tmp_path / "www"
    root.mkdir()
    (root / "v.bin").write_bytes(synth[0].read_bytes())  # a real video: downloads are decode-checked
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=root))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_download_success_resume_and_mismatch(server, tmp_path):
    url, root = server
    want = sha256sum(root / "v.bin")
    out = tmp_path / "a" / "source.mp4"
    download(f"{url}/v.bin", out, want)
    assert sha256sum(out) == want
    # resume: a partial file with the first half is continued, not restarted
    out2 = tmp_path / "b" / "source.mp4"
    out2.parent.mkdir()
    part = out2.with_name("source.mp4.part")
    data = (root / "v.bin").read_bytes()
    part.write_bytes(data[: len(data) // 2])
    download(f"{url}/v.bin", out2, want)
    assert sha256sum(out2) == want and not part.exists()
    # mismatch: partial deleted, no final output, message names the URL
    out3 = tmp_path / "c" / "source.mp4"
    with pytest.raises(MediaError, match="sha256 mismatch"):
        download(f"{url}/v.bin", out3, "0" * 64)
    assert not out3.exists() and not out3.with_name("source.mp4.part").exists()


def test_synthetic_is_deterministic(tmp_path):
    a = synthesize(tmp_path / "a.mp4", tmp_path / "a.json", 160, 90, 30, 2, 0.3, seed=4)
    b = synthesize(tmp_path / "b.mp4", tmp_path / "b.json", 160, 90, 30, 2, 0.3, seed=4)
    assert a == b == json.loads((tmp_path / "a.json").read_text())["cuts"]
    fa = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / "a.mp4")).decode(video=0)]
    fb = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / "b.mp4")).decode(video=0)]
    assert len(fa) == len(fb) == 18 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
