"""The report's side-by-side sample: one val frame as LR input | bicubic | VSRNet | ground truth.

The HR frames are degraded the study's way (4x4 box average); the model sees its window's LR
frames (vsr.infer.predict, as in training) and gives the luma, bicubic gives the chroma
(as `vsr upscale` does). A crop with the most detail is shown at native pixels, the LR input
enlarged by pixel repetition; the labels carry each panel's Y-PSNR (vsr.infer.evaluate's protocol).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr.fs import atomic_path
from vsr.infer.checkpoint import centred_windows, load_model, read_frames, with_luma
from vsr.infer.predict import predict_y
from vsr.media.io import MediaError, probe
from vsr.metrics import bicubic_upscale, psnr, rgb_to_studio_y
from vsr.models.vsrnet import SCALE

GAP, HEADER = 6, 28  # pixels between panels, label strip above them


def _window(video, frames: int, index: int) -> list[torch.Tensor]:
    """The `frames`-frame window centred on frame `index` (edges repeated), HR RGB in [0, 1]."""
    it, _ = read_frames(video)
    for i, w in enumerate(centred_windows((f for f, _ in it), frames)):
        if i == index:
            it.close()
            return w
    raise MediaError(f"{video}: has no frame {index}")


def _detail_crop(y: torch.Tensor, size: int) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) of the size x size crop (on a 4-px grid) with the most Laplacian energy."""
    H, W = y.shape[-2:]
    h, w = min(size, H) // SCALE * SCALE, min(size, W) // SCALE * SCALE
    lap = np.abs(cv2.Laplacian(y.numpy().astype(np.float32), cv2.CV_32F))
    integ = cv2.integral(lap)
    best, where = -1.0, (0, 0)
    for y0 in range(0, H - h + 1, max(SCALE, (H - h) // 8 // SCALE * SCALE or SCALE)):
        for x0 in range(0, W - w + 1, max(SCALE, (W - w) // 8 // SCALE * SCALE or SCALE)):
            e = integ[y0 + h, x0 + w] - integ[y0, x0 + w] - integ[y0 + h, x0] + integ[y0, x0]
            if e > best:
                best, where = e, (y0, x0)
    return (*where, h, w)


def sample_image(checkpoint, video, out, frame: int | None = None, size: int = 256) -> dict:
    """Write the 4-panel PNG `out` for frame `frame` (default: the middle one) of `video`.
    Returns {"panels": [(label, RGB uint8 [h, w, 3])], "psnr": {...}, "frame": index}."""
    model, _ = load_model(checkpoint, "cpu")
    index = probe(video)["frames"] // 2 if frame is None else frame
    win = torch.stack(_window(video, model.frames, index))
    H, W = win.shape[-2] // SCALE * SCALE, win.shape[-1] // SCALE * SCALE
    hr = win[..., :H, :W]
    c = model.frames // 2
    lr = F.avg_pool2d(hr, SCALE)
    bic = bicubic_upscale(lr[c : c + 1], (H, W))[0]
    sr = with_luma(bic, predict_y(model, lr))
    lr_big = lr[c].repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)
    ref = rgb_to_studio_y(hr[c : c + 1])
    db = {k: psnr(rgb_to_studio_y(x[None]), ref, SCALE).item() for k, x in (("bicubic", bic), ("VSRNet", sr))}
    y0, x0, h, w = _detail_crop(ref[0, 0], size)
    labels = [
        "LR input (x4 repeated)",
        f"bicubic {db['bicubic']:.2f} dB",
        f"VSRNet {db['VSRNet']:.2f} dB",
        "ground truth",
    ]
    panels = []
    for label, img in zip(labels, (lr_big, bic, sr, hr[c])):
        crop = img[:, y0 : y0 + h, x0 : x0 + w].clamp(0, 1).mul(255).round().byte()
        panels.append((label, crop.permute(1, 2, 0).contiguous().numpy()))
    canvas = np.full((HEADER + h, 4 * w + 3 * GAP, 3), 255, np.uint8)
    for i, (label, img) in enumerate(panels):
        x = i * (w + GAP)
        canvas[HEADER:, x : x + w] = img
        scale = min(0.45, w / (20.0 * len(label)))
        cv2.putText(
            canvas, label, (x + 2, HEADER - 9), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    with atomic_path(out, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), canvas[..., ::-1]):
            raise MediaError(f"{out}: could not write the sample image")
    return {"panels": panels, "psnr": db, "frame": index, "crop": (y0, x0, h, w), "video": str(Path(video))}
