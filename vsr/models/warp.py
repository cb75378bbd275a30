"""Backward warping with a dense flow in pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `img` [B, C, H, W] at (x + u, y + v) for every pixel (bilinear, border padding).

    flow [B, 2, H, W] is in pixels. With align_corners=True, pixel x maps to
    2x / (W - 1) - 1, so a displacement of u pixels is 2u / (W - 1) in grid units.
    """
    B, _, H, W = img.shape
    ys = torch.linspace(-1.0, 1.0, H, device=img.device, dtype=torch.float32)
    xs = torch.linspace(-1.0, 1.0, W, device=img.device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    fx = flow[:, 0].float() * (2.0 / max(W - 1, 1))
    fy = flow[:, 1].float() * (2.0 / max(H - 1, 1))
    # beyond the border is the border (padding_mode); non-finite flow (a diverged run, stopped a
    # few iterations later by the trainer) must not index out of bounds: grid_sample on CPU
    # segfaults on NaN / 1e30 coordinates
    grid = torch.stack((gx + fx, gy + fy), dim=-1).nan_to_num(0.0).clamp(-2.0, 2.0)
    out = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(img.dtype)
