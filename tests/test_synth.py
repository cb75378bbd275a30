"""The synthetic source: detail, motion in the asked range, and a true flow that warps."""

import av
import numpy as np
import torch

from vsr.media.synth import REF_HEIGHT, flow_path, synthesize, true_flow
from vsr.models.warp import warp


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-10))


def test_true_flow_warps_next_frame_onto_this_one(tmp_path):
    w, h, fps = 320, 180, 30
    cuts = synthesize(
        tmp_path / "s.mp4", tmp_path / "c.json", w, h, fps, scenes=2, seconds_per_scene=0.4, seed=2
    )
    assert cuts == [12] and flow_path(tmp_path / "s.mp4").exists()
    with av.open(str(tmp_path / "s.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 24
    px_per_lr = 4.0 * h / REF_HEIGHT
    speeds = []
    for t in (0, 5, 10, 13, 20):
        flow, valid = true_flow(flow_path(tmp_path / "s.mp4"), t)
        assert flow.shape == (h, w, 2) and flow.dtype == np.float32 and valid.mean() > 0.7
        nxt = torch.from_numpy(frames[t + 1]).permute(2, 0, 1)[None].float()
        warped = warp(nxt, torch.from_numpy(flow).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        m = valid[..., None].repeat(3, -1)
        good, zero = _psnr(warped[m], frames[t][m]), _psnr(frames[t + 1][m], frames[t][m])
        assert good > 32 and good > zero + 8, (t, good, zero)
        speeds.append(np.linalg.norm(flow[valid], axis=-1) / px_per_lr)
    s = np.concatenate(speeds)
    # 0.5-4 LR px/frame translations; rotation and zoom of a layer slow some of its pixels
    assert 0.5 < np.median(s) < 4.0 and np.percentile(s, 95) < 5.0, np.percentile(s, [5, 50, 95])
    flow, valid = true_flow(flow_path(tmp_path / "s.mp4"), 11)  # across the cut
    assert not valid.any()


def test_frames_have_detail():
    """No flat scenes: every frame's bicubic x4 round trip loses real detail."""
    import torch.nn.functional as F

    from vsr.media.synth import render_frames
    from vsr.metrics import bicubic_upscale, psnr, rgb_to_studio_y

    for _, rgb in render_frames(384, 256, 30, 4, 0.1, seed=0):
        hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        bic = bicubic_upscale(F.avg_pool2d(hr, 4), hr.shape[-2:])
        assert psnr(rgb_to_studio_y(bic), rgb_to_studio_y(hr)).item() < 33


def test_parallel_render_writes_the_serial_frames_and_flow(tmp_path):
    """The synthesize rule renders in `threads` processes: the same frames, bytes and flow."""
    args = dict(width=192, height=108, fps=30, scenes=3, seconds_per_scene=0.3, seed=2)
    cuts = [synthesize(tmp_path / f"{w}.mp4", tmp_path / f"{w}.json", **args, workers=w) for w in (1, 3)]
    assert cuts[0] == cuts[1] == [9, 18]
    with av.open(str(tmp_path / "1.mp4")) as a, av.open(str(tmp_path / "3.mp4")) as b:
        fa = [f.to_ndarray(format="rgb24") for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
    assert len(fa) == len(fb) == 27 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert (tmp_path / "1.mp4").read_bytes() == (tmp_path / "3.mp4").read_bytes()
    with np.load(flow_path(tmp_path / "1.mp4")) as x, np.load(flow_path(tmp_path / "3.mp4")) as y:
        assert sorted(x.files) == sorted(y.files) and len(x.files) == 27 + 2
        assert all(np.array_equal(x[k], y[k], equal_nan=True) for k in x.files)
    for t in (0, 5, 20):  # pairs inside a scene
        (f1, v1), (f3, v3) = (true_flow(flow_path(tmp_path / f"{w}.mp4"), t) for w in (1, 3))
        assert np.array_equal(f1, f3) and np.array_equal(v1, v3) and v1.any()
