"""PSNR and SSIM by the field's protocol (as BasicSR computes them).

Y of BT.601 *studio* range on the [0, 255] scale, predictions quantised to 8-bit levels,
`crop` pixels removed on every side, computed per image and then averaged (never pooled over
a batch). SSIM uses an 11x11 Gaussian window with sigma 1.5 (valid region only), applied separably.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

WINDOW, SIGMA = 11, 1.5  # SSIM's Gaussian window


def metric_name(kind: str, scale: int, crop: int) -> str:
    return f"{kind}-Y-box{scale}x-crop{crop}"


def studio_y(y_full: torch.Tensor, quantise: bool = True) -> torch.Tensor:
    """Full-range BT.601 luma in [0, 1] -> studio-range Y on [0, 255] (16 + 219 Y).
    Equal to BasicSR's rgb2ycbcr(y_only=True) of the same RGB."""
    y = 16.0 + 219.0 * y_full.double().clamp(0.0, 1.0)
    return y.round() if quantise else y


def rgb_to_studio_y(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], channel dim -3 -> studio-range Y [.., 1, H, W] from 8-bit-rounded RGB."""
    r, g, b = rgb.double().clamp(0.0, 1.0).mul_(255.0).round_().unbind(-3)
    y = (65.481 * r).add_(128.553 * g).add_(24.966 * b)
    return y.div_(255.0).add_(16.0).unsqueeze(-3)


def _crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    return x[..., crop:-crop, crop:-crop] if crop > 0 else x


def psnr(pred: torch.Tensor, ref: torch.Tensor, crop: int = 4) -> torch.Tensor:
    """Per-image PSNR (dB) of [B, 1, H, W] images on the [0, 255] scale -> [B]."""
    mse = (_crop(pred, crop).double() - _crop(ref, crop).double()).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def _gaussian(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian; the 2-D window is its outer product (applied separably)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _window(x: torch.Tensor) -> torch.Tensor:
    """x [B, 1, H, W] filtered by SSIM's 2-D Gaussian window (valid region), separably. On the
    CPU through OpenCV's GaussianBlur with the same normalised kernel, its border dropped (as
    BasicSR computes SSIM; 7.6 ms per 2560x1088 float64 plane, where torch's conv took ~0.4 s)."""
    if x.device.type != "cpu":
        g = _gaussian().to(x)
        return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    B, _, H, W = x.shape
    r, out = WINDOW // 2, np.empty((B, H, W))
    for i, p in enumerate(x.reshape(B, H, W).numpy()):
        cv2.GaussianBlur(p, (WINDOW, WINDOW), SIGMA, dst=out[i])
    return torch.from_numpy(out)[:, None, r:-r, r:-r]


def ssim(pred: torch.Tensor, ref: torch.Tensor, crop: int = 4) -> torch.Tensor:
    """Per-image SSIM of [B, 1, H, W] images on the [0, 255] scale -> [B]."""
    x, y = _crop(pred, crop).double(), _crop(ref, crop).double()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _window(x), _window(y)
    sxx, syy, sxy = _window(x * x) - mx**2, _window(y * y) - my**2, _window(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return m.mean(dim=(1, 2, 3))


def bicubic_upscale(lr_rgb: torch.Tensor, size) -> torch.Tensor:
    """The baseline: [B, C, h, w] -> bicubic (a = -0.75, align_corners=False, edges
    replicated) to `size`, clamped to [0, 1]. On the CPU through OpenCV's resize, which computes
    the same (within float rounding: tests/test_models.py) about 9x faster than torch's kernel."""
    if lr_rgb.device.type != "cpu":
        return F.interpolate(lr_rgb.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    B, C, h, w = lr_rgb.shape
    planes = lr_rgb.float().reshape(B * C, h, w).numpy()
    up = np.stack([cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for p in planes])
    return torch.from_numpy(up).reshape(B, C, *size).clamp_(0, 1)
