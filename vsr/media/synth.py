"""A deterministic synthetic source video with detail and motion, and its true optical flow.

Each scene is a FlyingChairs-like composite (vsr.media.render): a collage of bundled
photographs (shrunk to `photo_scale` of native size, never magnified) moving as a whole, and
3-6 textured cut-outs with their own affine motion; speeds 0.5-4 LR pixels per frame (LR =
the 540p version / 4) in random directions; hard cuts between scenes.

The true flow is written beside the video as an .npz (`flow_path(video)`, e.g.
data/source_flow.npz): `labels_NNNNNN` (uint8 [H, W], the top layer at each pixel of frame
NNNNNN), `poses` (float64 [frames, layers, 3, 3], layer pixel -> frame pixel, NaN where a scene
has fewer layers) and `scene` (int32 [frames]). `true_flow(path, t)` turns them into the dense
backward flow of frame t into t+1 at the source's resolution (scale it by the ratio of widths
for a transcoded copy) and the mask of pixels visible in both frames.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from vsr.fs import atomic_path
from vsr.media.render import make_scene, pair_flow, render

REF_HEIGHT = 540  # speeds are given in LR pixels of this resolution (scale 4)
MAX_LAYERS = 7  # background + at most 6 cut-outs


def flow_path(video: str | Path) -> Path:
    """Where the true flow of a synthetic video lives: beside it, `<stem>_flow.npz`."""
    video = Path(video)
    return video.with_name(f"{video.stem}_flow.npz")


def render_sequence(width, height, fps, scenes, seconds_per_scene, seed, photo_scale=0.5, only=None):
    """Yield (scene index, RGB uint8 frame, labels uint8, poses [MAX_LAYERS, 3, 3]); with
    `only`, just that scene's frames (the scenes before it are drawn, not rendered, so its
    frames are the same as in the whole sequence)."""
    rng = np.random.default_rng(seed)
    n = max(2, round(seconds_per_scene * fps))
    for s in range(scenes if only is None else only + 1):
        scene = make_scene(rng, width, height, n, photo_scale, px_per_lr=4.0 * height / REF_HEIGHT)
        if only is not None and s != only:
            continue
        for t in range(n):
            rgb, labels, poses = render(scene, t, width, height)
            padded = np.full((MAX_LAYERS, 3, 3), np.nan)
            padded[: len(poses)] = poses
            yield s, rgb, labels, padded


def render_frames(width, height, fps, scenes, seconds_per_scene, seed, only=None):
    """Yield (scene index, RGB uint8 frame) of the synthetic source (`only`: one scene)."""
    for s, rgb, _, _ in render_sequence(width, height, fps, scenes, seconds_per_scene, seed, only=only):
        yield s, rgb


def _put(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr))
    zf.writestr(f"{name}.npy", buf.getvalue())


def synthesize(
    out: str | Path,
    cuts_json: str | Path,
    width=1280,
    height=720,
    fps=60,
    scenes=6,
    seconds_per_scene=1.0,
    seed=0,
    crf=14,
    photo_scale=0.5,
    flow: str | Path | None = None,
) -> list[int]:
    """Render and encode (libx264, near-lossless) the synthetic source; write the true cuts
    (the first frame of every scene after the first) to `cuts_json` and the true flow to
    `flow` (default: `flow_path(out)`). Returns the cuts."""
    if width % 2 or height % 2:
        raise ValueError(f"source.synthetic: width and height must be even, got {width}x{height}")
    if not 0 < photo_scale <= 1:
        raise ValueError(
            f"source.synthetic.photo_scale: must be in (0, 1] (never magnified), got {photo_scale}"
        )
    flow = flow_path(out) if flow is None else Path(flow)
    starts, last, scene_of, poses = [], -1, [], []
    total = scenes * max(2, round(seconds_per_scene * fps))
    frames = render_sequence(width, height, fps, scenes, seconds_per_scene, seed, photo_scale)
    with atomic_path(out) as tmp, atomic_path(flow) as ftmp:
        with (
            av.open(str(tmp), "w", format="mp4") as c,
            zipfile.ZipFile(ftmp, "w", zipfile.ZIP_DEFLATED) as zf,
        ):
            st = c.add_stream("libx264", rate=fps)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            st.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}  # reproducible bytes
            st.codec_context.colorspace = 6  # SMPTE170M (BT.601)
            st.codec_context.color_range = 1  # limited
            for i, (s, rgb, labels, pose) in enumerate(
                tqdm(frames, total=total, desc="synthesize", unit="frame")
            ):
                if s != last:
                    starts.append(i)
                    last = s
                scene_of.append(s)
                poses.append(pose)
                _put(zf, f"labels_{i:06d}", labels)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                for p in st.encode(frame):
                    c.mux(p)
            for p in st.encode():
                c.mux(p)
            _put(zf, "poses", np.stack(poses))
            _put(zf, "scene", np.array(scene_of, np.int32))
    cuts = starts[1:]
    with atomic_path(cuts_json) as tmp:
        tmp.write_text(json.dumps({"cuts": cuts, "frames": total, "fps": fps}))
    return cuts


def true_flow(path: str | Path, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow [H, W, 2] (float32, x then y, source pixels) of frame t into frame t+1
    and the bool mask of pixels visible in both. Across a scene cut the mask is all False."""
    with np.load(path) as f:
        scene, poses = f["scene"], f["poses"]
        if not 0 <= t < len(scene) - 1:
            raise IndexError(f"{path}: frame pair {t}->{t + 1} out of range (frames 0..{len(scene) - 1})")
        lab0, lab1 = f[f"labels_{t:06d}"], f[f"labels_{t + 1:06d}"]
    flow, valid = pair_flow(poses[t], poses[t + 1], lab0, lab1)
    if scene[t] != scene[t + 1]:
        valid[:] = False
    return flow, valid
