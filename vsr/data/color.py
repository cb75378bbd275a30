"""The one YUV -> RGB conversion used everywhere (PNG extraction and every loader backend).

Decoders disagree on colour conversion (NVDEC's RGB output and FFmpeg's rgb24 differ by ~3
levels), so we never use theirs: every backend hands us the decoded 4:2:0 planes and this
function converts them. Matrix and range come from the stream's tags; an untagged stream is
taken as BT.601 limited range (what NVVL used). Chroma is upsampled by replication (each
chroma sample covers its 2x2 luma block), which makes crops at even offsets exact.
"""

from __future__ import annotations

import torch

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
    yf = y.float()
    uf = u.float().repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1) - 128.0
    vf = v.float().repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1) - 128.0
    if full_range:
        yl, cs = yf, 1.0
    else:
        yl, cs = (yf - 16.0) * (255.0 / 219.0), 255.0 / 224.0
    r = yl + (2.0 * (1.0 - kr) * cs) * vf
    b = yl + (2.0 * (1.0 - kb) * cs) * uf
    g = (yl - kr * r - kb * b) / kg
    rgb = torch.stack((r, g, b), dim=-3).round_().clamp_(0.0, 255.0)
    if out_dtype == torch.uint8:
        return rgb.to(torch.uint8)
    return (rgb / 255.0).to(out_dtype)
