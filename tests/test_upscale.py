"""`vsr upscale` end to end on tiny real clips (PyAV-encoded, with and without audio)."""

import av
import pytest
import torch
from conftest import PY, run
from tiny import identity_checkpoint, make_clip

from vsr.infer.checkpoint import read_frames, with_luma
from vsr.infer.predict import upsample
from vsr.media.color import rgb_to_yuv420
from vsr.media.io import probe
from vsr.metrics import bicubic_upscale
from vsr.models.vsrnet import rgb_to_y


def psnr(a, b):
    return (10 * torch.log10(1 / (a - b).pow(2).mean())).item()


@pytest.fixture(scope="module")
def ident(tmp_path_factory):
    return identity_checkpoint(tmp_path_factory.mktemp("upscale") / "identity.pt")


def test_upscale_near_identity_model_gives_bicubic_like_frames_and_keeps_audio(tmp_path, ident):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, 96, 64, frames=5, audio="aac")
    r = run(
        [
            PY,
            "-m",
            "vsr.cli",
            "upscale",
            str(src),
            str(dst),
            "--checkpoint",
            str(ident),
            "--device",
            "cpu",
            "--preset",
            "veryfast",
            "--crf",
            "8",  # near-lossless, so what is compared is the model and the colour path
        ]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    info = probe(dst)
    assert (info["width"], info["height"], info["frames"]) == (384, 256, 5)
    assert (info["colorspace"], info["color_range"]) == (6, 1)  # the input's BT.601 limited tags
    with av.open(str(dst)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert audio_s == pytest.approx(5 / 30, abs=0.05)
    lr = [f for f, _ in read_frames(src)[0]]
    out = [f for f, _ in read_frames(dst)[0]]
    for lo, hi in zip(lr, out):
        bic = bicubic_upscale(lo[None], hi.shape[-2:])[0]
        # the model reproduces its input luma (bilinear x4): close to bicubic, and equal to the
        # expected frame (bilinear luma, bicubic chroma) up to H.264's loss
        assert psnr(hi, bic) > 35  # bilinear vs bicubic luma differ on detailed content
        assert psnr(hi, with_luma(bic, rgb_to_y(upsample(lo)))) > 41


def test_upscale_reencodes_audio_mp4_cannot_hold_and_runs_without_audio(tmp_path, ident):
    from vsr.infer.upscale import upscale

    make_clip(tmp_path / "pcm.mov", 64, 64, frames=3, audio="pcm_s16le")
    s = upscale(tmp_path / "pcm.mov", tmp_path / "pcm_up.mp4", ident, "cpu", preset="veryfast")
    assert {k: s[k] for k in ("frames", "size", "audio")} == {"frames": 3, "size": (256, 256), "audio": True}
    with av.open(str(tmp_path / "pcm_up.mp4")) as c:
        assert [st.codec_context.name for st in c.streams.audio] == ["aac"]
    make_clip(tmp_path / "mute.mp4", 64, 64, frames=2)
    assert upscale(tmp_path / "mute.mp4", tmp_path / "mute_up.mp4", ident, "cpu")["audio"] is False
    with av.open(str(tmp_path / "mute_up.mp4")) as c:
        assert not c.streams.audio and probe(tmp_path / "mute_up.mp4")["frames"] == 2


def test_bad_checkpoint_or_input_is_one_line_and_writes_nothing(tmp_path, ident):
    make_clip(tmp_path / "in.mp4", 64, 64, frames=2)
    ck = torch.load(ident, weights_only=True)
    del ck["model"]["conv3.bias"]
    torch.save(ck, tmp_path / "broken.pt")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    for args, name, why in (
        (["in.mp4", "out.mp4", "--checkpoint", "broken.pt"], "broken.pt", "missing keys: conv3.bias"),
        (["junk.mp4", "out.mp4", "--checkpoint", str(ident)], "junk.mp4", "not a readable video"),
    ):
        r = run([PY, "-m", "vsr.cli", "upscale", *args], cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1, r.stderr
        assert name in lines[0] and why in lines[0]
        assert not list(tmp_path.glob("*out.mp4*"))


def test_rgb_to_yuv420_inverts_the_project_conversion():
    from vsr.media.color import yuv420_to_rgb

    g = torch.Generator().manual_seed(0)
    # 8-bit RGB, constant over each 2x2 block (what 4:2:0 can hold exactly)
    rgb = (
        torch.randint(0, 256, (3, 4, 4), generator=g).repeat_interleave(2, 1).repeat_interleave(2, 2) / 255.0
    )
    for matrix in ("bt601", "bt709"):
        for full in (False, True):
            y, u, v = rgb_to_yuv420(rgb, matrix, full)
            back = yuv420_to_rgb(y, u, v, matrix, full, torch.float32)
            assert ((back - rgb).abs() * 255).max() <= 2.01  # 8-bit YUV rounding only
            for a, b in zip((y, u, v), rgb_to_yuv420(back, matrix, full)):
                assert (a.int() - b.int()).abs().max() <= 1


def test_banded_colour_conversion_equals_the_whole_frame(ident):
    """upscale_frame's yuv420p buffer (bands of 64 rows, a short last one) is exactly
    rgb_to_yuv420(with_luma(bicubic, model luma)) of the whole frame."""
    from vsr.infer.checkpoint import load_model
    from vsr.infer.predict import predict_y
    from vsr.infer.upscale import upscale_frame

    model, _ = load_model(ident)
    torch.manual_seed(0)
    window = [torch.rand(3, 34, 50) for _ in range(3)]
    buf = upscale_frame(model, window, "bt709", False)
    y = predict_y(model, torch.stack(window))
    planes = rgb_to_yuv420(with_luma(bicubic_upscale(window[1][None], y.shape[-2:])[0], y), "bt709", False)
    assert torch.equal(buf, torch.cat([p.flatten() for p in planes]).reshape(-1, 200))
