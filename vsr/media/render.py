"""Moving-layer scenes in the FlyingChairs manner, with their true optical flow.

A scene is a background collage of photographs plus textured cut-outs (smooth random blobs
cut from other photographs), each layer with its own affine motion. Photographs are bundled
with scikit-image and matplotlib, shrunk with area averaging to `photo_scale` of their native
size (never magnified), so frames carry detail down to the pixel. Every layer's pose at frame
t is a 3x3 matrix (layer pixels -> frame pixels); with the per-pixel label of the top layer,
the exact flow between any two frames of a scene follows (`pair_flow`).

Motion: each layer moves at a constant speed, bouncing back and forth along a segment
(a triangle wave), so long scenes stay inside their canvas and layers stay in view.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np
from skimage import data as skdata

# colour photographs and grey textures (tinted at random); no flat or mostly-black images
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle",
    "immunohistochemistry",
    "grace_hopper",
    "camera",
    "brick",
    "grass",
    "gravel",
    "coins",
    "page",
    "text",
)


@cache
def photo(name: str) -> np.ndarray:
    """A bundled photograph as RGB uint8 (grey ones replicated to 3 channels)."""
    if name == "motorcycle":
        img = skdata.stereo_motorcycle()[0]
    elif name == "grace_hopper":
        from matplotlib import cbook

        img = cv2.cvtColor(
            cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB
        )
    else:
        img = getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


@lru_cache(maxsize=256)
def scaled(name: str, scale: float) -> np.ndarray:
    """The photograph shrunk to `scale` (<= 1) of its native size with area averaging."""
    img = photo(name)
    if scale >= 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)


@cache
def _grey(name: str) -> bool:
    img = photo(name)
    return bool((img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all())


def _tinted(rng, name: str, scale: float) -> np.ndarray:
    """The photograph at `scale`; grey ones get a random colour cast, colour ones a mild gain."""
    gain = rng.uniform(0.55, 1.0, 3) if _grey(name) else rng.uniform(0.85, 1.1, 3)
    return np.clip(scaled(name, scale) * gain.astype(np.float32), 0, 255).astype(np.uint8)


def _rot(theta: float, z: float = 1.0) -> np.ndarray:
    c, s = np.cos(theta) * z, np.sin(theta) * z
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _shift(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def tri(t: float, period: float) -> float:
    """Triangle wave: 0 at t=0, rising by 1 per frame to `period`, then back to 0."""
    return period - abs(t % (2 * period) - period)


@dataclass
class Layer:
    src: np.ndarray  # uint8 RGB texture
    alpha: np.ndarray | None  # float32 [0, 1] mask of the cut-out; None: opaque background
    anchor: np.ndarray  # texture pixel that sits at `pos`
    pos: np.ndarray  # frame position at t = 0
    vel: np.ndarray  # frame pixels per frame
    period: float  # frames of travel before the motion reverses
    theta: float  # rotation at t = 0 (radians) ...
    omega: float  # ... and its rate per frame
    zeta: float  # log zoom per frame

    def pose(self, t: float) -> np.ndarray:
        """3x3 matrix: texture pixel -> frame pixel at frame t."""
        tau = tri(t, self.period)
        p = self.pos + self.vel * tau
        rot = _rot(self.theta + self.omega * tau, float(np.exp(self.zeta * tau)))
        return _shift(*p) @ rot @ _shift(-self.anchor[0], -self.anchor[1])


def collage(rng, h: int, w: int, scale: float) -> np.ndarray:
    """An h x w canvas tiled (jittered grid, overlapping) with rotated photographs."""
    cell = max(24, round(400 * scale))
    canvas = np.zeros((h, w, 3), np.uint8)
    ys, xs = np.meshgrid(np.arange(-cell // 2, h, cell), np.arange(-cell // 2, w, cell), indexing="ij")
    for y, x in rng.permutation(np.stack([ys.ravel(), xs.ravel()], 1)):
        img = _tinted(rng, PHOTOS[rng.integers(len(PHOTOS))], scale)
        side = int(cell * rng.uniform(1.3, 1.6))
        ih, iw = img.shape[:2]
        c = rng.uniform([0.3 * iw, 0.3 * ih], [0.7 * iw, 0.7 * ih])
        m = _shift(side / 2, side / 2) @ _rot(rng.uniform(-0.5, 0.5)) @ _shift(-c[0], -c[1])
        patch = cv2.warpAffine(
            img, m[:2], (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        y0, x0 = (
            int(y + rng.integers(-cell // 6, cell // 6 + 1)),
            int(x + rng.integers(-cell // 6, cell // 6 + 1)),
        )
        sy, sx = max(0, -y0), max(0, -x0)
        dst = canvas[max(0, y0) : y0 + side, max(0, x0) : x0 + side]
        dst[:] = patch[sy : sy + dst.shape[0], sx : sx + dst.shape[1]]
    return canvas


def blob(rng, radius: int) -> np.ndarray:
    """A smooth, star-shaped random mask (float32, anti-aliased edge) of size 2r+1."""
    k = int(rng.integers(5, 12))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.45, 1.0, k)
    pts = np.stack([radius + r * np.cos(ang), radius + r * np.sin(ang)], 1)
    m = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    sigma = max(1.0, radius / 12)
    m = cv2.GaussianBlur(m, (0, 0), sigma)  # rounded outline; then a ~1 px soft edge
    return np.clip((m.astype(np.float32) / 255 - 0.5) * 4 + 0.5, 0, 1)


def _speed(rng, lo: float, hi: float, px_per_lr: float) -> np.ndarray:
    s = np.exp(rng.uniform(np.log(lo), np.log(hi))) * px_per_lr
    a = rng.uniform(0, 2 * np.pi)
    return s * np.array([np.cos(a), np.sin(a)])


def make_scene(
    rng, w, h, frames, photo_scale=0.5, speed=(0.5, 4.0), bg_speed=(0.5, 2.0), px_per_lr=4.0, layers=(3, 6)
):
    """Background collage + cut-out layers for `frames` frames of w x h. `speed`, `bg_speed`:
    ranges of the cut-outs' and the background's speeds (log-uniform) in LR pixels per frame
    (the background covers most of the frame: above ~3 LR px/frame its frame differences
    reach those of a scene cut for PySceneDetect); `px_per_lr`: frame pixels per LR pixel."""
    diag = float(np.hypot(w, h))
    bg_v = _speed(rng, *bg_speed, px_per_lr)
    period = float(min(max(frames, 1), 90))  # frames of travel before the camera pans back
    side = int(1.3 * diag + 2 * np.abs(bg_v).max() * period) + 8
    canvas = collage(rng, side, side, photo_scale)
    travel = bg_v * period
    anchor = np.array([side / 2, side / 2]) - travel / 2  # canvas point at the frame centre at t=0
    out = [
        Layer(
            canvas,
            None,
            anchor,
            np.array([w / 2, h / 2]),
            -bg_v,
            period,
            0.0,
            rng.uniform(-0.1, 0.1) / period,
            rng.uniform(-0.12, 0.12) / period,
        )
    ]
    for _ in range(int(rng.integers(layers[0], layers[1] + 1))):
        radius = int(min(w, h) * rng.uniform(0.1, 0.28))
        img = _tinted(rng, PHOTOS[rng.integers(len(PHOTOS))], photo_scale * rng.uniform(0.7, 1.0))
        src = cv2.copyMakeBorder(img, radius, radius, radius, radius, cv2.BORDER_REFLECT)
        ih, iw = src.shape[:2]
        cy, cx = int(rng.integers(radius, ih - radius)), int(rng.integers(radius, iw - radius))
        src = np.ascontiguousarray(src[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1])
        v = _speed(rng, *speed, px_per_lr)
        p0 = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
        room = [
            (w * 0.95 - p0[0]) if v[0] > 0 else (p0[0] - 0.05 * w),
            (h * 0.95 - p0[1]) if v[1] > 0 else (p0[1] - 0.05 * h),
        ]
        lp = float(max(4.0, min(r / max(abs(vi), 1e-3) for r, vi in zip(room, v))))
        out.append(
            Layer(
                src,
                blob(rng, radius),
                np.array([radius, radius], float),
                p0,
                v,
                lp,
                rng.uniform(-np.pi, np.pi),
                rng.uniform(-0.01, 0.01),
                rng.uniform(-0.004, 0.004),
            )
        )
    return out


def render(scene: list[Layer], t: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame t: (RGB uint8 [h, w, 3], top-layer label uint8 [h, w], poses [L, 3, 3])."""
    poses = np.stack([layer.pose(t) for layer in scene])
    bg = scene[0]
    out = cv2.warpAffine(bg.src, poses[0][:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    out = out.astype(np.float32)
    labels = np.zeros((h, w), np.uint8)
    for i, (layer, m) in enumerate(zip(scene[1:], poses[1:]), 1):
        sh, sw = layer.alpha.shape
        corners = m[:2] @ np.array([[0, sw, 0, sw], [0, 0, sh, sh], [1, 1, 1, 1]], float)
        x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int) + 2, [w, h])
        if x1 <= x0 or y1 <= y0:
            continue
        mm = (_shift(-x0, -y0) @ m)[:2]
        size = (int(x1 - x0), int(y1 - y0))
        tex = cv2.warpAffine(layer.src, mm, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        a = cv2.warpAffine(layer.alpha, mm, size, flags=cv2.INTER_LINEAR)[..., None]
        roi = out[y0:y1, x0:x1]
        roi *= 1 - a
        roi += a * tex
        labels[y0:y1, x0:x1][a[..., 0] > 0.5] = i
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), labels, poses


def _edges(labels: np.ndarray, px: int) -> np.ndarray:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(labels, k) != cv2.erode(labels, k)


def pair_flow(poses0, poses1, labels0, labels1, edge_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """True backward flow of frame t (poses0/labels0) into frame t+1: float32 [h, w, 2]
    (x, y) such that frame_t(p) = frame_t1(p + flow(p)); and a bool mask of the pixels that
    are visible in both frames (same top layer, inside the frame, away from layer edges)."""
    h, w = labels0.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np.zeros((h, w, 2), np.float64)
    for i in np.unique(labels0):
        m = poses1[i] @ np.linalg.inv(poses0[i])
        sel = labels0 == i
        x, y = xs[sel], ys[sel]
        flow[sel, 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2] - x
        flow[sel, 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2] - y
    tx, ty = np.rint(xs + flow[..., 0]).astype(int), np.rint(ys + flow[..., 1]).astype(int)
    inside = (tx >= 1) & (tx < w - 1) & (ty >= 1) & (ty < h - 1)
    tx, ty = tx.clip(0, w - 1), ty.clip(0, h - 1)
    valid = (
        inside & (labels1[ty, tx] == labels0) & ~_edges(labels0, edge_px) & ~_edges(labels1, edge_px)[ty, tx]
    )
    return flow.astype(np.float32), valid
