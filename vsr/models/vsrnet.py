"""VSRNet with FlowNet2-SD motion compensation (Makansi et al. 2017, Fig. 1b; NVVL's example).

Outer frames are backward-warped onto the centre frame with flow computed on the *low-res*
input (the example used HR frames, which do not exist at test time), the warped luminance
frames go through a shared 9x9 conv, are concatenated, and two more convs predict the centre
frame's luminance at 4x. The degradation (4x4 box average, bilinear x4 back) happens here on
the device, so every loader feeds identical tensors and the HR target is never overwritten.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import ConfigError
from vsr.models.flownet_sd import FlowNetSD, load_checkpoint
from vsr.models.warp import warp

SCALE = 4
FLOW_MODES = ("frozen", "finetune", "dis", "none")
HEADS = ("residual", "sigmoid")


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB in [0, 1] (channel dim -3), keeping a channel of size 1."""
    r, g, b = rgb.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def degrade(hr: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """[B, F, C, H, W] -> the LR frames (scale x scale box average) bilinearly upsampled back
    onto the HR grid (align_corners=False). A new tensor; `hr` is untouched."""
    B, Fr, C, H, W = hr.shape
    x = hr.reshape(B * Fr, C, H, W)
    lr = F.avg_pool2d(x, scale)
    up = F.interpolate(lr, size=(H, W), mode="bilinear", align_corners=False)
    return up.reshape(B, Fr, C, H, W)


def _conv(cin, cout, k, batch_norm):
    layers = [nn.Conv2d(cin, cout, k, 1, k // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.1))


@torch.compiler.disable
def dis_flow(ref: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """OpenCV DIS flow (medium preset, no learned weights) at every `ref` pixel pointing into
    `other`: [B, 2, H, W] in pixels from RGB [B, 3, H, W] in [0, 1]. Runs on the host (a
    GPU tensor makes a round trip); no gradient."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def grey(x):
        y = rgb_to_y(x.detach().float())[:, 0].clamp(0, 1) * 255.0
        return (y + 0.5).to(torch.uint8).cpu().numpy()

    out = [dis.calc(a, b, None) for a, b in zip(grey(ref), grey(other))]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(ref.device)


class VSRNet(nn.Module):
    """Construction is pure: it reads no file and accepts every valid combination (a frozen
    FlowNet-SD starts random until `load_flownet` fills it). `dense_conv1`: see features()."""

    def __init__(
        self,
        frames: int = 3,
        features=(64, 32),
        flow_mode: str = "finetune",
        flownet_width: float = 1.0,
        head: str = "residual",
        batch_norm: bool = False,
        dense_conv1: bool | None = None,
    ):
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd, got {frames}")
        if flow_mode not in FLOW_MODES:
            raise ValueError(f"flownet.mode must be one of {FLOW_MODES}, got {flow_mode!r}")
        if head not in HEADS:
            raise ValueError(f"model.head must be one of {HEADS}, got {head!r}")
        self.frames, self.flow_mode, self.head, self.batch_norm = frames, flow_mode, head, batch_norm
        self.dense_conv1 = dense_conv1
        f1, f2 = features
        self.conv1 = _conv(1, f1, 9, batch_norm)
        self.conv2 = _conv(f1 * frames, f2, 5, batch_norm)
        self.conv3 = nn.Conv2d(f2, 1, 5, 1, 2)
        if head == "residual":  # start as the bilinear input, but let gradients reach conv1/2
            nn.init.normal_(self.conv3.weight, 0.0, 1e-3)
            nn.init.zeros_(self.conv3.bias)
        else:
            nn.init.normal_(self.conv3.weight, 0.0, 0.1)
        self.flownet = None
        if flow_mode in ("frozen", "finetune"):
            self.flownet = FlowNetSD(flownet_width)
            self.flownet.small_init_flow()
            self.flownet.requires_grad_(flow_mode == "finetune")

    def load_flownet(self, path) -> None:
        """Pretrained FlowNet2-SD weights (flownet2-pytorch's file) into the flow network."""
        if self.flownet is None:
            raise ValueError(f"flownet.mode {self.flow_mode} has no FlowNet-SD to load {path} into")
        load_checkpoint(self.flownet, path)

    def flow_parameters(self) -> list[nn.Parameter]:
        """FlowNet's trainable parameters (none unless flownet.mode is finetune): trained at a
        lower lr than the SR net and never with weight decay (vsr.train.optim)."""
        return [p for p in self.flownet.parameters() if p.requires_grad] if self.flownet is not None else []

    def train(self, mode: bool = True):
        super().train(mode)
        if self.flownet is not None and self.flow_mode == "frozen":
            self.flownet.eval()
        return self

    def flow(self, ref: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        if self.flow_mode == "dis":
            return dis_flow(ref, other)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.flow_mode == "finetune"):
            return self.flownet.flow(ref, other)

    def align(self, lr_up: torch.Tensor, flow_src: torch.Tensor | None = None) -> torch.Tensor:
        """Luma of every frame, outer frames warped onto the centre: [B, F, 1, H, W]."""
        y = rgb_to_y(lr_up)
        if self.flow_mode == "none" or self.frames == 1:
            return y
        src = lr_up if flow_src is None else flow_src
        B, Fr = src.shape[:2]
        c = Fr // 2
        outer = [f for f in range(Fr) if f != c]
        ref = src[:, c].repeat(len(outer), 1, 1, 1)
        other = torch.cat([src[:, f] for f in outer], 0)
        flow = self.flow(ref, other)  # [len(outer) * B, 2, H, W]
        warped = warp(torch.cat([y[:, f] for f in outer], 0), flow).split(B, 0)
        frames = list(warped)
        frames.insert(c, y[:, c])
        return torch.stack(frames, 1)

    def forward(self, lr_up: torch.Tensor, flow_src: torch.Tensor | None = None) -> torch.Tensor:
        """lr_up: bilinearly upsampled LR RGB frames [B, F, 3, H, W] in [0, 1] (H, W multiples
        of 64 with FlowNet) -> predicted HR luma of the centre frame [B, 1, H, W] (fp32):
        residual head: bilinear centre luma + the net's correction (not clamped; metrics
        clamp); sigmoid head: the net's whole image through a sigmoid (the seed's)."""
        B, Fr, _, H, W = lr_up.shape
        if Fr != self.frames:
            raise ValueError(f"expected {self.frames} frames, got {Fr}")
        if self.flownet is not None and (H % 64 or W % 64):
            raise ValueError(f"frame size {H}x{W} must be a multiple of 64 for FlowNet-SD")
        y = self.align(lr_up, flow_src)
        feats = self.features(y)
        out = self.conv3(self.conv2(feats)).float()
        if self.head == "residual":
            return y[:, Fr // 2].float() + out
        return torch.sigmoid(out)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """conv1, shared by every frame -> [B, F * f1, H, W], frame-major channels.

        Without batch norm it runs as one dense conv F -> F * f1 whose weight is block-diagonal
        (conv1's weight on the diagonal, zeros elsewhere): 3x conv1's FLOPs, but no reshape copy
        of the feature maps in channels_last: 37.1 vs 42.6 ms per step on an H200 (a grouped conv
        of the same weight ran 2.8x slower there), but 23% slower on a CPU at full width, so
        `dense_conv1` None means CUDA only. Batch norm needs per-frame statistics: shared."""
        B, Fr, _, H, W = y.shape
        dense = y.is_cuda if self.dense_conv1 is None else self.dense_conv1
        if dense and not self.batch_norm:
            conv = self.conv1[0]
            f1, k = conv.weight.shape[0], conv.weight.shape[-1]
            eye = torch.eye(Fr, device=y.device, dtype=conv.weight.dtype)
            weight = (eye[:, None, :, None, None] * conv.weight[None]).reshape(Fr * f1, Fr, k, k)
            out = F.conv2d(y.reshape(B, Fr, H, W), weight, conv.bias.repeat(Fr), padding=k // 2)
            return self.conv1[-1](out)
        feats = self.conv1(y.reshape(B * Fr, 1, H, W))
        return feats.reshape(B, Fr * feats.shape[1], H, W)


def sr_step(model: VSRNet, hr: torch.Tensor, flow_from: str = "lr"):
    """HR frames [B, F, 3, H, W] -> (prediction, target, network input) lumas [B, 1, H, W].

    The target is the HR centre luma, computed before and independently of the degradation.
    flow_from='hr' reproduces the example (flow on HR frames) for comparison only."""
    hr = hr.float()  # the loader may deliver fp16/bf16; degradation and target stay fp32
    c = hr.shape[1] // 2
    target = rgb_to_y(hr[:, c])
    lr_up = degrade(hr)
    pred = model(lr_up, flow_src=hr if flow_from == "hr" else None)
    return pred, target, rgb_to_y(lr_up[:, c]).float()


def build_vsrnet(cfg: dict, dense_conv1: bool | None = None) -> VSRNet:
    """The VSRNet a training config describes (the `cfg` stored in train_state.pt / final.pt),
    with fresh weights; `load_flownet_weights` fills a pretrained FlowNet-SD. model.head
    defaults to residual and model.batch_norm to false (configs written before these keys
    existed describe the seed's sigmoid + batch-norm net: name them to load one)."""
    fl, m = cfg["flownet"], cfg["model"]
    return VSRNet(
        cfg["frames"],
        tuple(m["features"]),
        fl["mode"],
        fl.get("width", 1.0),
        head=m.get("head", "residual"),
        batch_norm=m.get("batch_norm", False),
        dense_conv1=dense_conv1,
    )


def load_flownet_weights(model: VSRNet, cfg: dict) -> None:
    """flownet.checkpoint into a freshly built model (training); a frozen FlowNet-SD without
    one is refused (it would stay random)."""
    path = cfg["flownet"].get("checkpoint")
    if path and model.flownet is not None:
        model.load_flownet(path)
    elif model.flow_mode == "frozen":
        raise ConfigError(
            "flownet.mode: frozen needs flownet.checkpoint (a frozen random FlowNet is useless); "
            "use finetune, dis or none"
        )
