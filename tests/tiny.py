"""Tiny real inputs for the model-use tests: a PyAV-encoded clip (optionally with AAC audio)
and VSRNet checkpoints in vsr.train.loop's final.pt format."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vsr.media.synth import render_frames
from vsr.models.vsrnet import build_vsrnet


def make_clip(path, width=160, height=120, frames=6, fps=30, audio=None, pix_fmt="yuv420p", faststart=False):
    """H.264 clip of rendered frames; `audio`: None, 'aac' or 'pcm_s16le' (1 s tone);
    `faststart`: the header (frame count) before the frames, as a truncated download keeps it."""
    w, h = max(width, 16) + width % 2, max(height, 16) + height % 2
    imgs = [f[:height, :width] for _, f in render_frames(w, h, fps, 1, frames / fps + 0.5, 3)][:frames]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fmt = "mov" if audio == "pcm_s16le" else "mp4"
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=opts) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.options = {"crf": "16", "preset": "veryfast"}
        a = c.add_stream(audio, rate=44100, layout="mono") if audio else None
        for img in imgs:
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        if a is not None:
            t = np.arange(44100 * frames // fps) / 44100
            tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
            for i in range(0, len(tone), 1024):
                fr = av.AudioFrame.from_ndarray(tone[None, i : i + 1024], format="s16", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = 44100, i, Fraction(1, 44100)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return imgs


def tiny_cfg(flow="none", frames=3):
    return {
        "frames": frames,
        "model": {"features": [8, 4]},
        "flownet": {"mode": flow, "checkpoint": None, "width": 0.0625},
    }


def save_checkpoint(path, model, cfg):
    torch.save({"model": model.state_dict(), "cfg": cfg, "iter": 0}, path)
    return path


def make_checkpoint(path, flow="none", seed=0):
    torch.manual_seed(seed)
    cfg = tiny_cfg(flow)
    return save_checkpoint(path, build_vsrnet(cfg), cfg)


def identity_checkpoint(path, frames=3):
    """A VSRNet (no flow, residual head) whose output is exactly the centre frame's bilinear
    input luma: conv3 (the correction) is zero."""
    cfg = tiny_cfg("none", frames)
    cfg["model"].update(features=[8, 8], head="residual", batch_norm=False)
    m = build_vsrnet(cfg).eval()
    with torch.no_grad():
        m.conv3.weight.zero_()
        m.conv3.bias.zero_()
    return save_checkpoint(path, m, cfg)
