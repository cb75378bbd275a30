"""Per-resolution transcode (ffmpeg-python) and PNG extraction (PyAV + our colour conversion)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import torch
from tqdm import tqdm

from vsr.fs import atomic_dir, atomic_path
from vsr.media.color import matrix_from_tags, yuv420_to_rgb
from vsr.media.io import RESOLUTIONS, MediaError, named, open_video, probe, run_ffmpeg


def fit_filters(stream, width: int, height: int, tw: int, th: int, name: str, log):
    """Scale to (tw, th) without distortion: a source of another aspect is scaled to cover
    the target and centre-cropped, and the log says how much of each side was cut."""
    if width * th == height * tw:
        return stream.filter("scale", tw, th, flags="bicubic")
    wider = width * th > height * tw  # wider than the target: fit the height, crop the sides
    sw, sh = (round(width * th / height), th) if wider else (tw, round(height * tw / width))
    sw, sh = max(sw, tw), max(sh, th)
    cut = 100 * (1 - tw * th / (sw * sh))
    log(
        f"{name}: aspect {width}x{height} differs from the {tw}x{th} target: scaled to {sw}x{sh} and "
        f"centre-cropped to {tw}x{th} ({cut:.0f}% of the picture cut, not stretched)"
    )
    return stream.filter("scale", sw, sh, flags="bicubic").filter("crop", tw, th)


def transcode(
    src, out, res: str, codec="libx264", crf=18, preset="medium", keyframe_interval=4, bframes=0, log=print
) -> None:
    """Scale `src` to `res` (aspect kept: cover and centre-crop) and encode H.264 yuv420p with a
    fixed, short keyframe interval, BT.601 limited-range tags (what every loader reads back)."""
    import ffmpeg  # ffmpeg-python: only the Snakemake data rules need the ffmpeg binary

    width, height = RESOLUTIONS[res]
    info = probe(src)  # one-line error for missing / unreadable input
    stream = fit_filters(
        ffmpeg.input(str(src)).video, info["width"], info["height"], width, height, named(src), log
    )
    with atomic_path(out) as tmp:
        out = stream.output(
            str(tmp),
            vcodec=codec,
            crf=crf,
            preset=preset,
            g=keyframe_interval,
            keyint_min=keyframe_interval,
            sc_threshold=0,
            bf=bframes,
            pix_fmt="yuv420p",
            color_primaries="smpte170m",
            color_trc="smpte170m",
            colorspace="smpte170m",
            color_range="tv",
            movflags="+faststart",
            f="mp4",
        )
        run_ffmpeg(out, f"{named(src)}: transcode to {res}")


def decoded_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y, U, V planes of a yuv420p frame as numpy arrays (no colour conversion)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    a = frame.to_ndarray()
    h, w = frame.height, frame.width
    q = (h // 2) * (w // 2)
    flat = a[h:].reshape(-1)
    return a[:h], flat[:q].reshape(h // 2, w // 2), flat[q : 2 * q].reshape(h // 2, w // 2)


def write_png(path: Path, rgb: np.ndarray, compression: int, shown=None) -> None:
    """Encode and write one frame; a short or failed write (full disk, file-size limit,
    read-only folder) is a MediaError, never a missing frame."""
    ok, buf = cv2.imencode(".png", rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise MediaError(f"{shown or path}: PNG encoding failed")
    try:
        with open(path, "wb") as f:
            if f.write(buf.tobytes()) != buf.size:
                raise OSError(28, "short write")
    except OSError as e:
        raise MediaError(
            f"{shown or path}: cannot write ({e.strerror or e}): disk full or folder not writable"
        ) from None


def extract_frames(src, out_dir, compression: int = 3) -> int:
    """Write every frame of `src` as `out_dir/%05d.png` (1-based, like ffmpeg's image2); the
    folder appears only once every frame is written."""
    with atomic_dir(out_dir) as tmp:
        with open_video(src) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            matrix, full = matrix_from_tags(s.codec_context.colorspace, s.codec_context.color_range)
            n = 0
            try:
                for frame in tqdm(c.decode(s), total=s.frames or None, desc=Path(src).name, unit="frame"):
                    y, u, v = (torch.from_numpy(p) for p in decoded_planes(frame))
                    rgb = yuv420_to_rgb(y, u, v, matrix, full).permute(1, 2, 0).numpy()
                    n += 1
                    write_png(Path(tmp) / f"{n:05d}.png", rgb, compression, Path(out_dir) / f"{n:05d}.png")
            except av.error.FFmpegError as e:
                raise MediaError(f"{src}: corrupt or truncated video ({e.strerror or e})") from None
        if n == 0:
            raise MediaError(f"{src}: no decodable frames")
    return n


def encode_frames(frames, out, fps: int, keyframe_interval=4, crf=18, preset="veryfast", bframes=0) -> int:
    """Encode RGB uint8 frames with PyAV's libx264 using the same settings and tags as
    `transcode` (for machines without an ffmpeg binary). Returns the frame count."""
    n = 0
    with atomic_path(out) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            st = c.add_stream("libx264", rate=fps)
            st.pix_fmt = "yuv420p"
            st.options = {
                "crf": str(crf),
                "preset": preset,
                "g": str(keyframe_interval),
                "keyint_min": str(keyframe_interval),
                "sc_threshold": "0",
                "bf": str(bframes),
            }
            st.codec_context.colorspace = 6
            st.codec_context.color_range = 1
            for rgb in frames:
                if n == 0:
                    st.height, st.width = rgb.shape[:2]
                for p in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    c.mux(p)
                n += 1
            for p in st.encode():
                c.mux(p)
    return n
