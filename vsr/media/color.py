"""The one YUV -> RGB conversion used everywhere (PNG extraction and every loader backend),
and its inverse for writing video (`vsr upscale`).

Decoders disagree on colour conversion (NVDEC's RGB output and FFmpeg's rgb24 differ by ~3
levels), so we never use theirs: every backend hands us the decoded 4:2:0 planes and this
function converts them. Matrix and range come from the stream's tags; an untagged stream is
taken as BT.601 limited range (what NVVL used). Chroma is upsampled by replication (each
chroma sample covers its 2x2 luma block), which makes crops at even offsets exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (Kr, Kb) luma coefficients per matrix.
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}

# FFmpeg AVColorSpace codes -> our matrix names (1 = BT709, 5 = BT470BG, 6 = SMPTE170M, 9 = BT2020).
_AVCOL_SPC = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}


def matrix_from_tags(colorspace: int | None, color_range: int | None) -> tuple[str, bool]:
    """Map FFmpeg's colorspace / color_range codes to (matrix, full_range); documented default
    for untagged streams: BT.601, limited range."""
    matrix = _AVCOL_SPC.get(int(colorspace or 2), "bt601")
    return matrix, int(color_range or 0) == 2


def yuv420_to_rgb(
    y: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    matrix: str = "bt601",
    full_range: bool = False,
    out_dtype: torch.dtype = torch.uint8,
) -> torch.Tensor:
    """Convert uint8 planes y [..., H, W], u/v [..., H/2, W/2] to RGB [..., 3, H, W].

    uint8 output is rounded and clamped to 0..255; a floating dtype gives exactly that uint8
    value divided by 255 (so every loader returns the PNG's pixels, whatever the dtype).
    """
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    if full_range:
        yl, cs = y.float(), 1.0
    else:
        yl, cs = y.float().sub_(16.0).mul_(255.0 / 219.0), 255.0 / 224.0
    # Chroma terms at chroma resolution; each covers its 2x2 luma block by broadcasting, so the
    # upsampled chroma planes are never materialised (3x fewer passes than repeating them).
    uf, vf = u.float().sub_(128.0), v.float().sub_(128.0)
    cr = vf * (2.0 * (1.0 - kr) * cs)
    cb = uf * (2.0 * (1.0 - kb) * cs)
    cg = (cr * kr).add_(cb * kb).div_(-kg)
    *lead, H, W = y.shape
    out = torch.empty((*lead, 3, H // 2, 2, W // 2, 2), dtype=torch.float32, device=y.device)
    yb = yl.view(*lead, H // 2, 2, W // 2, 2)
    for c, term in enumerate((cr, cg, cb)):
        torch.add(yb, term.view(*lead, H // 2, 1, W // 2, 1), out=out.select(-5, c))
    rgb = out.view(*lead, 3, H, W).round_().clamp_(0.0, 255.0)
    if out_dtype == torch.uint8:
        return rgb.to(torch.uint8)
    return rgb.div_(255.0).to(out_dtype)


def rgb_to_yuv420(rgb: torch.Tensor, matrix: str = "bt601", full_range: bool = False):
    """RGB [3, H, W] in [0, 1] -> uint8 planes y [H, W], u/v [H/2, W/2]: the inverse of
    yuv420_to_rgb (chroma averaged over the 2x2 block that conversion replicates)."""
    kr, kb = MATRICES[matrix]
    r, g, b = (rgb.float().clamp(0, 1) * 255.0).unbind(0)
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr))
    if not full_range:
        y, cb, cr = 16.0 + y * (219.0 / 255.0), cb * (224.0 / 255.0), cr * (224.0 / 255.0)
    u, v = (F.avg_pool2d(c[None, None], 2)[0, 0] + 128.0 for c in (cb, cr))
    return tuple(p.round().clamp(0, 255).to(torch.uint8) for p in (y, u, v))
