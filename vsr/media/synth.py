"""A deterministic synthetic source video: slow sub-pixel pans/zooms over real photographs
(bundled with scikit-image), one photograph per scene, hard cuts between scenes."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data as skdata
from tqdm import tqdm

from vsr.media.io import atomic_path

PHOTOS = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
]


def _photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def render_frames(width: int, height: int, fps: int, scenes: int, seconds_per_scene: float, seed: int):
    """Yield (scene index, RGB uint8 frame). Each scene pans and zooms slowly over one photo."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(PHOTOS))
    n = max(2, round(seconds_per_scene * fps))
    for s in range(scenes):
        img = _photo(PHOTOS[order[s % len(PHOTOS)]])
        ih, iw = img.shape[:2]
        cover = max(width / iw, height / ih) * 1.35  # photo covers the frame with margin
        # pan velocity in output pixels per frame (sub-pixel), zoom rate per frame
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.3, 1.2)
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)
        zoom = rng.uniform(-0.0015, 0.0015)
        cx, cy = iw / 2, ih / 2
        for t in range(n):
            scale = cover * (1.0 + zoom * t)
            # map photo -> frame: x' = scale * (x - cx) + W/2 - vx * t
            m = np.array(
                [
                    [scale, 0.0, width / 2 - scale * cx - vx * t],
                    [0.0, scale, height / 2 - scale * cy - vy * t],
                ]
            )
            frame = cv2.warpAffine(
                img, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )
            yield s, frame


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
) -> list[int]:
    """Render and encode (libx264, near-lossless) the synthetic source; write the true cuts
    (the first frame of every scene after the first) to `cuts_json`. Returns the cuts."""
    if width % 2 or height % 2:
        raise ValueError(f"source.synthetic: width and height must be even, got {width}x{height}")
    if scenes > len(PHOTOS):
        raise ValueError(f"source.synthetic.scenes: at most {len(PHOTOS)} distinct photographs")
    cuts, starts, last = [], [], -1
    total = scenes * max(2, round(seconds_per_scene * fps))
    with atomic_path(out) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            st = c.add_stream("libx264", rate=fps)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            st.options = {"crf": str(crf), "preset": "veryfast"}
            st.codec_context.colorspace = 6  # SMPTE170M (BT.601)
            st.codec_context.color_range = 1  # limited
            for i, (s, rgb) in enumerate(
                tqdm(
                    render_frames(width, height, fps, scenes, seconds_per_scene, seed),
                    total=total,
                    desc="synthesize",
                    unit="frame",
                )
            ):
                if s != last:
                    starts.append(i)
                    last = s
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                for p in st.encode(frame):
                    c.mux(p)
            for p in st.encode():
                c.mux(p)
    cuts = starts[1:]
    with atomic_path(cuts_json) as tmp:
        tmp.write_text(json.dumps({"cuts": cuts, "frames": total, "fps": fps}))
    return cuts
