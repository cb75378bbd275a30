"""Using a trained VSRNet: load a checkpoint, decode a video, centred windows, predict luma.

Shared by `vsr evaluate`, `vsr upscale` and the report's side-by-side sample. The model sees
what it saw in training (vsr.train.loop / sr_step): RGB frames in [0, 1] bilinearly upsampled x4
from the LR frames; it predicts the centre frame's BT.601 (full-range) luma.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import torch
import torch.nn.functional as F

from vsr.errors import CheckpointError
from vsr.media.color import matrix_from_tags, yuv420_to_rgb
from vsr.media.io import MediaError, open_video
from vsr.media.transcode import decoded_planes
from vsr.models.vsrnet import SCALE, VSRNet, build_vsrnet, rgb_to_y


def _load_dict(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({why})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a vsr checkpoint (expected a dict with 'model' and 'cfg')")
    if not isinstance(ckpt.get("cfg"), dict):
        raise CheckpointError(f"{path}: has no training config ('cfg'); cannot build its model")
    return ckpt


def _state_mismatch(model: torch.nn.Module, state: dict) -> str:
    """'' when `state` fits `model` exactly, else a short description of the difference."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
    ]
    parts = []
    for name, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{name}: {', '.join(items[:3])}{more}")
    return "; ".join(parts)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VSRNet, dict]:
    """A final.pt / train_state.pt -> (VSRNet in eval mode on `device`, its training config)."""
    path = Path(path)
    ckpt = _load_dict(path)
    cfg = copy.deepcopy(ckpt["cfg"])
    build = copy.deepcopy(cfg)
    fl = build.get("flownet")
    if isinstance(fl, dict) and fl.get("checkpoint"):
        # the state dict holds the FlowNet weights: the pretrained file need not exist here
        fl["checkpoint"] = None
        if fl.get("mode") == "frozen":
            fl["mode"] = "finetune"
    try:
        model = build_vsrnet(build)
    except KeyError as e:
        raise CheckpointError(f"{path}: its cfg lacks the key {e} needed to build the model") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its cfg does not describe a VSRNet ({e})") from None
    why = _state_mismatch(model, ckpt["model"])
    if why:
        raise CheckpointError(f"{path}: weights do not match the model its cfg describes ({why})")
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg


def read_frames(path: str | Path, device="cpu") -> tuple[Iterator[tuple[torch.Tensor, int | None]], dict]:
    """Decode every frame of `path` with PyAV and vsr.media.color: (iterator of (RGB float [3, H, W]
    in [0, 1] on `device`, pts), info with width, height, fps, frames (container's count, may
    be 0), time_base, matrix, full_range)."""
    c = open_video(path)
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    cc = s.codec_context
    matrix, full = matrix_from_tags(cc.colorspace, cc.color_range)
    info = {
        "width": cc.width,
        "height": cc.height,
        "fps": s.average_rate or s.guessed_rate,
        "frames": s.frames,
        "time_base": s.time_base,
        "matrix": matrix,
        "full_range": full,
    }

    def frames():
        try:
            for frame in c.decode(s):
                y, u, v = (torch.from_numpy(p).to(device) for p in decoded_planes(frame))
                yield yuv420_to_rgb(y, u, v, matrix, full, torch.float32), frame.pts
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: corrupt or truncated video ({e.strerror or e})") from None
        finally:
            c.close()

    return frames(), info


def centred_windows(frames: Iterable, n: int) -> Iterator[list]:
    """One window of `n` frames centred on each frame of `frames` (edges: the first / last
    frame repeated); holds only `n` frames at a time."""
    r = n // 2
    src = iter(frames)
    ahead = [f for _, f in zip(range(r + 1), src)]
    if not ahead:
        return
    seen, last = len(ahead), ahead[-1]
    window = deque([ahead[0]] * r + ahead + [last] * (r + 1 - len(ahead)), maxlen=n)
    i = 0
    while True:
        yield list(window)
        i += 1
        nxt = next(src, None)
        if nxt is not None:
            last, seen = nxt, seen + 1
        if i >= seen:
            return
        window.append(last)


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


@torch.no_grad()
def predict_y(model: VSRNet, lr_up: torch.Tensor) -> torch.Tensor:
    """Bilinear-upsampled LR window [F, 3, H, W] -> the model's centre luma [1, H, W] in [0, 1]
    (padded to a multiple of 64 for FlowNet-SD, cropped back)."""
    x, (H, W) = pad_to(lr_up.unsqueeze(0))
    return model(x)[0, :, :H, :W].float().clamp(0.0, 1.0)


def upsample(lr: torch.Tensor, mode: str, scale: int = SCALE) -> torch.Tensor:
    """[..., 3, h, w] -> x`scale` ('bilinear' as the model's input, 'bicubic' as the baseline)."""
    lead, (C, h, w) = lr.shape[:-3], lr.shape[-3:]
    up = F.interpolate(lr.reshape(-1, C, h, w).float(), scale_factor=scale, mode=mode, align_corners=False)
    return up.reshape(*lead, C, h * scale, w * scale)


def with_luma(rgb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RGB whose BT.601 luma is `y` and whose chroma (B-Y, R-Y) is that of `rgb` (clamped)."""
    return (rgb + (y - rgb_to_y(rgb))).clamp(0.0, 1.0)
