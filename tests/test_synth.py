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


def test_one_scene_renders_as_in_the_whole_sequence():
    """`vsr prepare` renders each scene in its own process (`only=`): same frames, same order."""
    from vsr.media.synth import render_frames

    whole = [(s, f) for s, f in render_frames(128, 96, 30, 3, 0.1, seed=2)]
    one = [(s, f) for s, f in render_frames(128, 96, 30, 3, 0.1, seed=2, only=2)]
    assert [s for s, _ in one] == [2, 2, 2]
    assert all((a == b).all() for (_, a), (_, b) in zip(one, [x for x in whole if x[0] == 2]))
