"""`vsr upscale IN OUT --checkpoint final.pt`: every frame x4 with a trained VSRNet.

Luma is the model's (vsr.infer.predict: from the LR frames as in training), chroma is bicubic
x4; frames are decoded with PyAV (or NVDEC) and converted by vsr.media.color, and encoded back
with the exact inverse of that conversion (the input's matrix and range, tagged so), H.264
yuv420p via PyAV. The audio stream is copied (re-encoded to AAC where MP4 cannot hold it).
Timestamps are the input's. Paths are checked before any work; the output appears whole or not
at all (a temporary beside it, removed on errors, Ctrl-C and SIGTERM, and on the next run
after a kill).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import torch
from tqdm import tqdm

from vsr import log
from vsr.errors import ConfigError, MediaError
from vsr.fs import atomic_path
from vsr.infer.checkpoint import centred_windows, load_model, read_frames, with_luma
from vsr.infer.predict import predict_y
from vsr.media.color import matrix_from_tags, rgb_to_yuv420, yuv420_to_rgb
from vsr.media.io import open_video
from vsr.metrics import bicubic_upscale
from vsr.models.vsrnet import SCALE

# FFmpeg AVColorSpace code written for each matrix (the inverse of vsr.media.color's reading)
_SPC = {"bt601": 6, "bt709": 1, "bt2020": 9}
# audio codecs an .mp4 can hold as they are
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
LOG = log.get("vsr.upscale")


def upscale_frame(model, window: list[torch.Tensor], matrix="bt601", full_range=False) -> torch.Tensor:
    """LR RGB window [F x [3, h, w]] -> the centre frame x4 as one yuv420p buffer
    [4h * 3 / 2, 4w] uint8 (Y, then U, then V): the model's luma with bicubic chroma (with_luma),
    converted by rgb_to_yuv420 in bands of rows that stay in the CPU cache."""
    lr = torch.stack(window)
    y = predict_y(model, lr).cpu()
    c = len(window) // 2
    bic = bicubic_upscale(lr[c : c + 1], y.shape[-2:])[0].cpu()
    H, W = y.shape[-2:]
    buf = torch.empty(H * 3 // 2, W, dtype=torch.uint8)
    flat = buf.view(-1)
    q = H * W // 4
    for a in range(0, H, 64):
        b = min(a + 64, H)
        py, pu, pv = rgb_to_yuv420(with_luma(bic[:, a:b], y[:, a:b]), matrix, full_range)
        buf[a:b] = py
        flat[H * W + a * W // 4 : H * W + b * W // 4] = pu.flatten()
        flat[H * W + q + a * W // 4 : H * W + q + b * W // 4] = pv.flatten()
    return buf


def check_output(src, dst) -> None:
    """Refuse, before any work, an output that is the input, a directory, under a file or in a
    folder that cannot be written; remove temporaries that a killed run left beside it."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise MediaError(f"{dst}: is the input {src}; write the output to another file")
    if dst.is_dir():
        raise MediaError(f"{dst}: is a directory; name the output file, e.g. {dst / (src.stem + '_x4.mp4')}")
    above = next(p for p in dst.parents if p.exists())
    if not above.is_dir():
        raise MediaError(f"{dst}: {above} is a file, not a folder")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=dst.parent):
            pass
    except OSError as e:
        raise MediaError(f"{dst}: cannot write in {dst.parent} ({e.strerror or e})") from None
    leftover = re.compile(rf"\.{re.escape(dst.name)}\.[A-Za-z0-9_]{{8}}{re.escape(dst.suffix)}")
    for p in dst.parent.iterdir():
        if leftover.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            LOG.info(f"removed {p}, left by an interrupted run")


def _nvdec_frames(path, device):
    """NVDEC decode (vsr.data.nvdec, one session) of every frame: (RGB, pts), info."""
    from vsr.data import nvdec
    from vsr.data.index import build_index

    if not nvdec.available() or torch.device(device).type != "cuda":
        raise MediaError(f"{path}: --decode nvdec needs PyNvVideoCodec and a CUDA --device")
    idx = build_index(path)
    matrix, full = matrix_from_tags(idx.colorspace, idx.color_range)
    H, W = idx.height, idx.width
    backend = nvdec.NvdecBackend(device, decoders=1)
    with open_video(path) as c:
        s = c.streams.video[0]
        info = {"width": W, "height": H, "fps": s.average_rate or s.guessed_rate, "frames": idx.frames}
        info.update(time_base=s.time_base, matrix=matrix, full_range=full)

    def frames():
        try:
            for start in range(0, idx.frames, 16):
                for t, nv12 in enumerate(backend.frames(idx, start, min(16, idx.frames - start))):
                    uv = nv12[H:].view(H // 2, W // 2, 2)
                    rgb = yuv420_to_rgb(nv12[:H], uv[..., 0], uv[..., 1], matrix, full, torch.float32)
                    yield rgb, idx.pts[start + t]
        finally:
            backend.close()

    return frames(), info


class _Audio:
    """The input's first audio stream into `out`, interleaved by time: packets copied where
    MP4 can hold the codec, else decoded and re-encoded to AAC."""

    def __init__(self, path, out):
        self.src = av.open(str(path))
        ins = self.src.streams.audio[0]
        self.copy = ins.codec_context.name in MP4_AUDIO
        if self.copy:
            self.stream = out.add_stream_from_template(ins)
            self.stream.time_base = ins.time_base
        else:
            self.stream = out.add_stream("aac", rate=ins.rate or 48000)
        self.out, self.ins = out, ins
        self.packets = self._packets()
        self.pending = next(self.packets, None)

    def _packets(self):
        for pkt in self.src.demux(self.ins):
            if pkt.dts is None:
                continue
            if self.copy:
                pkt.stream = self.stream
                yield pkt
            else:
                for frame in pkt.decode():
                    frame.pts = None
                    yield from self.stream.encode(frame)
        if not self.copy:
            yield from self.stream.encode(None)

    def until(self, seconds: float | None) -> None:
        while self.pending is not None:
            p = self.pending
            if seconds is not None and p.pts is not None and p.pts * p.time_base > seconds:
                return
            self.out.mux(p)
            self.pending = next(self.packets, None)

    def close(self) -> None:
        self.src.close()


def _video_stream(out, info, crf: int, preset: str):
    st = out.add_stream("libx264", rate=Fraction(info["fps"] or 30))
    st.width, st.height = info["width"] * SCALE, info["height"] * SCALE
    st.pix_fmt = "yuv420p"
    st.time_base = info["time_base"]
    st.codec_context.time_base = info["time_base"]
    st.options = {"crf": str(crf), "preset": preset}
    st.codec_context.colorspace = _SPC[info["matrix"]]
    st.codec_context.color_range = 2 if info["full_range"] else 1
    return st


def _encode_frames(model, frames, info, out, st, audio, desc) -> int:
    """Upscale and encode every frame (timestamps the input's); returns how many."""
    pts = []

    def lr_frames():
        for rgb, p in frames:
            pts.append(p)
            yield rgb

    n = 0
    with tqdm(total=info["frames"] or None, desc=desc, unit="frame") as bar:
        for window in centred_windows(lr_frames(), model.frames):
            planes = upscale_frame(model, window, info["matrix"], info["full_range"])
            frame = av.VideoFrame.from_ndarray(planes.numpy(), format="yuv420p")
            p = pts[n] if pts[n] is not None else n / (info["fps"] or 30) / info["time_base"]
            frame.pts, frame.time_base = int(p), info["time_base"]
            if audio:
                audio.until(float(frame.pts * info["time_base"]))
            for pkt in st.encode(frame):
                out.mux(pkt)
            n += 1
            bar.update(1)
    return n


def upscale(src, dst, checkpoint, device=None, decode: str = "pyav", crf: int = 18, preset="medium") -> dict:
    """Write `dst`: every frame of `src` x4 (see module doc). Returns a summary dict."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: not an x264 preset (one of {', '.join(PRESETS)})")
    if not 0 <= crf <= 51:
        raise ConfigError(f"--crf {crf}: must be 0 (lossless) .. 51")
    check_output(src, dst)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    frames, info = _nvdec_frames(src, device) if decode == "nvdec" else read_frames(src, device)
    model, _ = load_model(checkpoint, device)
    with open_video(src) as c:
        has_audio = bool(c.streams.audio)
    t0 = time.perf_counter()
    with atomic_path(dst) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        st = _video_stream(out, info, crf, preset)
        audio = _Audio(src, out) if has_audio else None
        n = _encode_frames(model, frames, info, out, st, audio, f"upscale {Path(src).name}")
        if n == 0:
            raise MediaError(f"{src}: no decodable frames")
        for pkt in st.encode(None):
            out.mux(pkt)
        if audio:
            audio.until(None)
            audio.close()
    seconds = time.perf_counter() - t0
    size = (info["width"] * SCALE, info["height"] * SCALE)
    return {"frames": n, "size": size, "audio": has_audio, "seconds": seconds}


def main(a) -> None:
    """`vsr upscale` (arguments parsed by vsr.cli)."""
    s = upscale(a.input, a.output, a.checkpoint, a.device, a.decode, a.crf, a.preset)
    (w, h), fps = s["size"], s["frames"] / max(s["seconds"], 1e-9)
    audio = ", audio kept" if s["audio"] else ""
    LOG.info(f"{a.output}: {s['frames']} frames at {w}x{h}{audio}; {s['seconds']:.1f} s, {fps:.2f} frames/s")
