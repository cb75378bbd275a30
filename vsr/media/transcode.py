"""Per-resolution transcode (ffmpeg-python) and PNG extraction (PyAV + our colour conversion)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import torch
from tqdm import tqdm

from vsr.color import matrix_from_tags, yuv420_to_rgb
from vsr.media.io import MediaError, atomic_dir, atomic_path, ffmpeg_exe, open_video

RESOLUTIONS = {"4K": (3840, 2160), "1080p": (1920, 1080), "720p": (1280, 720), "540p": (960, 540)}


def transcode(
    src, out, res: str, codec="libx264", crf=18, preset="medium", keyframe_interval=4, bframes=0
) -> None:
    """Scale `src` to `res` and encode H.264 yuv420p with a fixed, short keyframe interval,
    BT.601 limited-range tags (what every loader then reads back), no audio."""
    import ffmpeg  # ffmpeg-python: only the Snakemake data rules need the ffmpeg binary

    width, height = RESOLUTIONS[res]
    open_video(src).close()  # one-line error for missing / unreadable input
    with atomic_path(out) as tmp:
        try:
            (
                ffmpeg.input(str(src))
                .output(
                    str(tmp),
                    vf=f"scale={width}:{height}:flags=bicubic",
                    an=None,
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
                .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y")
                .run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
            )
        except ffmpeg.Error as e:
            last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise MediaError(f"{src}: transcode to {res} failed ({last[0]})") from None


def decoded_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y, U, V planes of a yuv420p frame as numpy arrays (no colour conversion)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    a = frame.to_ndarray()
    h, w = frame.height, frame.width
    q = (h // 2) * (w // 2)
    flat = a[h:].reshape(-1)
    return a[:h], flat[:q].reshape(h // 2, w // 2), flat[q : 2 * q].reshape(h // 2, w // 2)


def extract_frames(src, out_dir, compression: int = 3) -> int:
    """Write every frame of `src` as `out_dir/%05d.png` (1-based, like ffmpeg's image2)."""
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
                    cv2.imwrite(
                        str(Path(tmp) / f"{n:05d}.png"),
                        rgb[..., ::-1],
                        [cv2.IMWRITE_PNG_COMPRESSION, compression],
                    )
            except av.error.FFmpegError as e:
                raise MediaError(f"{src}: corrupt or truncated video ({e.strerror or e})") from None
        if n == 0:
            raise MediaError(f"{src}: no decodable frames")
    return n


def dir_size_bytes(paths) -> int:
    total = 0
    for p in paths:
        p = Path(p)
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


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
