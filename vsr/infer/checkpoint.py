"""Using a trained VSRNet: load a checkpoint, decode a video, centred windows, swap luma.

Shared by `vsr evaluate`, `vsr upscale` and the report's side-by-side sample; the prediction
itself is vsr.infer.predict (what the model saw in training: RGB frames in [0, 1] bilinearly
upsampled x4 from the LR frames -> the centre frame's BT.601 full-range luma).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import torch

from vsr import log
from vsr.errors import CheckpointError
from vsr.media.color import matrix_from_tags, yuv420_to_rgb
from vsr.media.io import MediaError, open_video
from vsr.media.transcode import decoded_planes
from vsr.models import weights
from vsr.models.vsrnet import VSRNet, build_vsrnet, rgb_to_y

MIN_SIDE = 16  # pixels: DIS flow and the 9x9 conv need a few blocks


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VSRNet, dict]:
    """A final.pt / train_state.pt -> (VSRNet in eval mode on `device`, its training config).
    The file is read with weights_only (vsr.models.weights): it cannot run code."""
    path = Path(path)
    ckpt = weights.read(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a vsr checkpoint (expected a dict with 'model' and 'cfg')")
    if not isinstance(ckpt.get("cfg"), dict):
        raise CheckpointError(f"{path}: has no training config ('cfg'); cannot build its model")
    cfg = copy.deepcopy(ckpt["cfg"])
    try:
        model = build_vsrnet(cfg)  # the state dict holds the FlowNet weights too
    except KeyError as e:
        raise CheckpointError(f"{path}: its cfg lacks the key {e} needed to build the model") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its cfg does not describe a VSRNet ({e})") from None
    weights.load_into(model, ckpt["model"], path, "the model its cfg describes")
    return model.to(device).eval(), cfg


def open_checked(path: str | Path):
    """(container, video stream, info) of a video the model can take: width, height, fps,
    frames (the header's count, 0 if it has none), time_base, matrix, full_range; a
    MediaError for a size 4:2:0 cannot hold or too small to upscale."""
    c = open_video(path)
    s = c.streams.video[0]
    cc = s.codec_context
    if cc.width % 2 or cc.height % 2 or min(cc.width, cc.height) < MIN_SIDE:
        c.close()
        raise MediaError(
            f"{path}: {cc.width}x{cc.height}: width and height must be even (4:2:0) and at least "
            f"{MIN_SIDE} pixels"
        )
    matrix, full = matrix_from_tags(cc.colorspace, cc.color_range)
    info = {"width": cc.width, "height": cc.height, "fps": s.average_rate or s.guessed_rate}
    info.update(frames=s.frames, time_base=s.time_base, matrix=matrix, full_range=full)
    return c, s, info


def read_frames(path: str | Path, device="cpu", short: str = "error"):
    """Decode every frame of `path` with PyAV and vsr.media.color: (iterator of (RGB float
    [3, H, W] in [0, 1] on `device`, pts), info (see open_checked)). When the iterator runs
    out with fewer frames than the header promises, or at a decoding error (a truncated file),
    it raises a MediaError with both counts (`short="error"`) or logs them as a warning and
    ends ("warn")."""
    c, s, info = open_checked(path)
    s.thread_type = "AUTO"
    return _decode(c, s, path, device, info, short), info


def _decode(c, s, path, device, info, short):
    n, why = 0, None
    try:
        for frame in c.decode(s):
            y, u, v = (torch.from_numpy(p).to(device) for p in decoded_planes(frame))
            n += 1
            yield yuv420_to_rgb(y, u, v, info["matrix"], info["full_range"], torch.float32), frame.pts
    except av.error.FFmpegError as e:
        why = e.strerror or str(e)
    finally:
        c.close()
    if why or (info["frames"] and n < info["frames"]):
        promised = f"its header promises {info['frames']} frames, " if info["frames"] else ""
        msg = f"{path}: truncated or corrupt{f' ({why})' if why else ''}: {promised}{n} decoded"
        if short == "error" or n == 0:
            raise MediaError(msg)
        log.get("vsr.infer").warning(f"{msg}; using those {n}")


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


def with_luma(rgb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RGB whose BT.601 luma is `y` and whose chroma (B-Y, R-Y) is that of `rgb` (clamped)."""
    return (rgb + (y - rgb_to_y(rgb))).clamp(0.0, 1.0)
