"""FlowNet2-SD (Ilg et al. 2017), the small-displacement network of FlowNet 2.0.

Architecture and parameter names follow flownet2-pytorch's `FlowNetSD(batchNorm=False)`, so its
converted checkpoint (`FlowNet2-SD_checkpoint.pth.tar`: a dict whose `state_dict` holds 60
unprefixed tensors) loads with strict=True. `width` < 1 scales every channel count for cheap
CPU runs (such a net cannot load the published weights).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import CheckpointError
from vsr.models import weights

DIV_FLOW = 20.0  # the network predicts flow / 20


def _conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.1))


def _deconv(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.LeakyReLU(0.1))


class FlowNetSD(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [max(2, round(n * width)) for n in (64, 128, 256, 512, 1024)]
        self.conv0 = _conv(6, c[0])
        self.conv1 = _conv(c[0], c[0], 2)
        self.conv1_1 = _conv(c[0], c[1])
        self.conv2 = _conv(c[1], c[1], 2)
        self.conv2_1 = _conv(c[1], c[1])
        self.conv3 = _conv(c[1], c[2], 2)
        self.conv3_1 = _conv(c[2], c[2])
        self.conv4 = _conv(c[2], c[3], 2)
        self.conv4_1 = _conv(c[3], c[3])
        self.conv5 = _conv(c[3], c[3], 2)
        self.conv5_1 = _conv(c[3], c[3])
        self.conv6 = _conv(c[3], c[4], 2)
        self.conv6_1 = _conv(c[4], c[4])
        cat5, cat4, cat3, cat2 = c[3] * 2 + 2, c[3] + c[2] + 2, c[2] + c[1] + 2, c[1] + c[0] + 2
        self.deconv5 = _deconv(c[4], c[3])
        self.deconv4 = _deconv(cat5, c[2])
        self.deconv3 = _deconv(cat4, c[1])
        self.deconv2 = _deconv(cat3, c[0])
        self.inter_conv5 = nn.Sequential(nn.Conv2d(cat5, c[3], 3, 1, 1))
        self.inter_conv4 = nn.Sequential(nn.Conv2d(cat4, c[2], 3, 1, 1))
        self.inter_conv3 = nn.Sequential(nn.Conv2d(cat3, c[1], 3, 1, 1))
        self.inter_conv2 = nn.Sequential(nn.Conv2d(cat2, c[0], 3, 1, 1))
        self.predict_flow6 = nn.Conv2d(c[4], 2, 3, 1, 1)
        self.predict_flow5 = nn.Conv2d(c[3], 2, 3, 1, 1)
        self.predict_flow4 = nn.Conv2d(c[2], 2, 3, 1, 1)
        self.predict_flow3 = nn.Conv2d(c[1], 2, 3, 1, 1)
        self.predict_flow2 = nn.Conv2d(c[0], 2, 3, 1, 1)
        for k in ("6_to_5", "5_to_4", "4_to_3", "3_to_2"):
            setattr(self, f"upsampled_flow{k}", nn.ConvTranspose2d(2, 2, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: [B, 6, H, W] normalised pair -> (flow2, flow3, ..., flow6), flow / 20."""
        c1 = self.conv1_1(self.conv1(self.conv0(x)))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        flow6 = self.predict_flow6(c6)
        cat5 = torch.cat((c5, self.deconv5(c6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(self.inter_conv5(cat5))
        cat4 = torch.cat((c4, self.deconv4(cat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(self.inter_conv4(cat4))
        cat3 = torch.cat((c3, self.deconv3(cat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(self.inter_conv3(cat3))
        cat2 = torch.cat((c2, self.deconv2(cat3), self.upsampled_flow3_to_2(flow3)), 1)
        flow2 = self.predict_flow2(self.inter_conv2(cat2))
        return flow2, flow3, flow4, flow5, flow6

    def flow(self, ref: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Flow in full-resolution pixels (u = x, v = y) at every `ref` pixel, pointing into
        `other`; ref/other are RGB [B, 3, H, W] in [0, 1], H and W multiples of 64.
        Normalised as FlowNet2SD does (per-sample channel mean of the pair removed, /rgb_max)."""
        pair = torch.stack((ref, other), 2)  # [B, 3, 2, H, W]
        mean = pair.float().mean(dim=(2, 3, 4), keepdim=True).to(pair.dtype)
        x = (pair - mean).permute(0, 2, 1, 3, 4).reshape(ref.shape[0], 6, *ref.shape[-2:])
        flow2 = self(x)[0] * DIV_FLOW
        return F.interpolate(flow2, scale_factor=4, mode="bilinear", align_corners=False)

    def small_init_flow(self, scale: float = 1e-2) -> None:
        """Start near zero flow (near-identity warp) without pretrained weights: the last
        prediction layer is scaled down, not zeroed, so every layer gets a gradient from the
        first step (a zeroed predict_flow2 passes none back, and weight decay then shrinks
        every other FlowNet weight towards zero)."""
        with torch.no_grad():
            self.predict_flow2.weight.mul_(scale)
            self.predict_flow2.bias.zero_()


def checkpoint_width(state: dict) -> float | None:
    """The `width` a FlowNet-SD state dict was built with (from conv0's channels), if it has conv0."""
    w = state.get("conv0.0.weight")
    return None if w is None or not hasattr(w, "shape") else w.shape[0] / 64


def load_checkpoint(net: FlowNetSD, path: str | os.PathLike) -> None:
    """Load flownet2-pytorch's checkpoint (a dict whose `state_dict` holds the weights, or the
    state dict itself) strictly; a wrong kind or width of file is refused in one line."""
    ckpt = weights.read(path, "FlowNet2-SD checkpoint")
    if isinstance(ckpt, dict) and "model" in ckpt and "cfg" in ckpt:
        raise CheckpointError(
            f"{path}: this is a VSRNet checkpoint (vsr.train's final.pt / train_state.pt), not FlowNet2-SD"
        )
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no FlowNet2-SD state_dict in checkpoint")
    have, want = checkpoint_width(state), checkpoint_width(net.state_dict())
    if have is not None and have != want and set(state) == set(net.state_dict()):
        raise CheckpointError(
            f"{path}: FlowNet2-SD of width {have:g} ({state['conv0.0.weight'].shape[0]} channels in conv0), "
            f"the model's flownet.width is {want:g}"
        )
    weights.load_into(net, state, path, "FlowNet2-SD")
