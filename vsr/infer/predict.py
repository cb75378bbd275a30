"""A trained VSRNet's centre-frame luma for a window of LR frames, computed cheaply.

The same function as `VSRNet.forward` on the bilinearly upsampled window (what training feeds
it), done in an order that does far less work at HR size:
- luma before upsampling: BT.601 luma and bilinear interpolation are both linear, so they
  commute (equal up to float rounding) and one plane is upsampled instead of three;
- DIS flow (flownet.mode dis) on the LR frames, its vectors x4 and bilinearly upsampled: 1/16
  of the pixels of flow at HR size (the output stays within a tested tolerance of it:
  tests/test_predict.py);
- on a CPU the three convolutions run in bands of rows, so a band's 24-channel features stay
  in the cache (a whole 2560x1088 frame's are 267 MB), conv1 as one grouped conv over the
  frames in channels_last; image borders are zero-padded as the whole-image convs are.
FlowNet-SD modes run the model's own alignment on the window padded to a multiple of 64.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from vsr.models.vsrnet import SCALE, VSRNet, dis_flow, rgb_to_y

BAND = 32  # output rows per band of the CPU path


def upsample(x: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """[..., C, h, w] -> bilinear x`scale` (align_corners=False): the model's input."""
    lead, (C, h, w) = x.shape[:-3], x.shape[-3:]
    flat = x.reshape(-1, C, h, w).float()
    up = F.interpolate(flat, scale_factor=scale, mode="bilinear", align_corners=False)
    return up.reshape(*lead, C, h * scale, w * scale)


def pad_to(x: torch.Tensor, multiple: int = 64) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims up to a multiple (replicate where reflect cannot reach)."""
    H, W = x.shape[-2:]
    ph, pw = -H % multiple, -W % multiple
    if not (ph or pw):
        return x, (H, W)
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    mode = "reflect" if ph < H and pw < W else "replicate"
    return F.pad(flat, (0, pw, 0, ph), mode=mode).reshape(*lead, x.shape[-3], H + ph, W + pw), (H, W)


@functools.lru_cache(maxsize=4)
def _base_grid(H: int, W: int, device) -> torch.Tensor:
    """grid_sample's coordinates of every pixel (align_corners=True), [H, W, 2]."""
    ys = torch.linspace(-1.0, 1.0, H, device=device)
    xs = torch.linspace(-1.0, 1.0, W, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), -1)


def _warp_lr_flow(y: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """vsr.models.warp.warp of HR lumas y [N, 1, H, W] by LR flow [N, 2, h, w] (LR pixels)
    upsampled x4 (vectors x4): scaled to grid units at LR size, one pass at HR size."""
    H, W = y.shape[-2:]
    units = torch.tensor([2.0 * SCALE / max(W - 1, 1), 2.0 * SCALE / max(H - 1, 1)], device=y.device)
    offsets = upsample((flow.float() * units[None, :, None, None]).contiguous())
    grid = torch.add(_base_grid(H, W, y.device), offsets.permute(0, 2, 3, 1)).clamp_(-2.0, 2.0)
    return F.grid_sample(y, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _aligned(model: VSRNet, lr: torch.Tensor) -> torch.Tensor:
    """LR RGB window [F, 3, h, w] -> lumas at HR, outer frames warped onto the centre [F, 1, H, W]."""
    y = upsample(rgb_to_y(lr))
    if model.flow_mode == "none" or model.frames == 1:
        return y
    c = lr.shape[0] // 2
    outer = [f for f in range(lr.shape[0]) if f != c]
    flow = dis_flow(lr[[c] * len(outer)], lr[outer])  # [len(outer), 2, h, w] in LR pixels (finite)
    warped = _warp_lr_flow(y[outer], flow)
    return torch.cat([warped[:c], y[c : c + 1], warped[c:]])


def _folded(block) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a conv [+ eval-mode batch norm] block, the norm folded into the conv."""
    conv = block[0]
    w = conv.weight.float()
    b = conv.bias.float() if conv.bias is not None else torch.zeros(w.shape[0], device=w.device)
    if len(block) > 2:  # conv, BatchNorm2d, LeakyReLU
        bn = block[1]
        k = bn.weight.float() / torch.sqrt(bn.running_var.float() + bn.eps)
        w, b = w * k[:, None, None, None], (b - bn.running_mean.float()) * k + bn.bias.float()
    return w, b


def _rows(x: torch.Tensor, have: tuple[int, int], want: tuple[int, int], H: int, r: int, fn):
    """fn (a conv without row padding) over rows `want` of a layer whose input rows `have` are
    in x: rows above 0 / below H are zeros, as a whole-image conv with padding r sees them."""
    a, b = want[0] - r, want[1] + r
    lo, hi = max(a, have[0]), min(b, have[1])
    s = x[:, :, lo - have[0] : hi - have[0]]
    if lo > a or hi < b:
        s = F.pad(s, (0, 0, lo - a, b - hi))
    return fn(s)


def _sr_bands(model: VSRNet, y: torch.Tensor) -> torch.Tensor:
    """conv3(conv2(features(y))) for lumas y [1, F, H, W], in bands of BAND output rows."""
    (w1, b1), (w2, b2) = _folded(model.conv1), _folded(model.conv2)
    w3, b3 = model.conv3.weight.float(), model.conv3.bias.float()
    Fr, H, W = y.shape[1], y.shape[2], y.shape[3]
    w1, b1 = w1.repeat(Fr, 1, 1, 1), b1.repeat(Fr)  # one grouped conv: frame-major channels
    s1, s2 = model.conv1[-1].negative_slope, model.conv2[-1].negative_slope
    p1, p2, p3 = w1.shape[-1] // 2, w2.shape[-1] // 2, w3.shape[-1] // 2
    y = y.contiguous(memory_format=torch.channels_last)
    out = torch.empty(1, 1, H, W, device=y.device)
    for a in range(0, H, BAND):
        rows3 = (a, min(a + BAND, H))
        rows2 = (max(a - p3, 0), min(rows3[1] + p3, H))
        rows1 = (max(rows2[0] - p2, 0), min(rows2[1] + p2, H))
        f1 = _rows(y, (0, H), rows1, H, p1, lambda s: F.conv2d(s, w1, b1, padding=(0, p1), groups=Fr))
        f2 = _rows(F.leaky_relu_(f1, s1), rows1, rows2, H, p2, lambda s: F.conv2d(s, w2, b2, padding=(0, p2)))
        out[:, :, a : rows3[1]] = _rows(
            F.leaky_relu_(f2, s2), rows2, rows3, H, p3, lambda s: F.conv2d(s, w3, b3, padding=(0, p3))
        )
    return out


@torch.no_grad()
def predict_y(model: VSRNet, lr: torch.Tensor) -> torch.Tensor:
    """LR RGB window [F, 3, h, w] in [0, 1] -> the model's centre luma [1, 4h, 4w] in [0, 1]."""
    if model.flownet is not None:  # FlowNet-SD needs multiples of 64: the model's own path
        x, (H, W) = pad_to(upsample(lr)[None])
        return model(x)[0, :, :H, :W].float().clamp(0.0, 1.0)
    y = _aligned(model, lr.float())
    if y.is_cuda:
        out = model.conv3(model.conv2(model.features(y[None]))).float()[0]
    else:
        out = _sr_bands(model, y.reshape(1, -1, *y.shape[-2:]))[0]
    c = lr.shape[0] // 2
    pred = y[c] + out if model.head == "residual" else torch.sigmoid(out)
    return pred.clamp_(0.0, 1.0)
