"""Media helpers: the ffmpeg binary, probing and checking videos with PyAV, linking a source."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from vsr.errors import MediaError

RESOLUTIONS = {"4K": (3840, 2160), "1080p": (1920, 1080), "720p": (1280, 720), "540p": (960, 540)}


def check_fits(width: int, height: int, resolutions) -> None:
    """Ground truth is never magnified: a `width` x `height` source must cover every one of
    `resolutions` (a MediaError naming the ones it does not)."""
    small = [r for r in resolutions if RESOLUTIONS[r][0] > width or RESOLUTIONS[r][1] > height]
    if small:
        names = " and ".join(small)
        raise MediaError(f"source {width}x{height} is smaller than {names}; drop {names} from resolutions")


def ffmpeg_exe() -> str:
    """ffmpeg from PATH, else the binary bundled with imageio-ffmpeg (no system requirement)."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffmpeg_version() -> tuple[int, int]:
    """(major, minor) of ffmpeg_exe(); a git build without a release number counts as new."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True).stdout
    m = re.search(r"version n?(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else (99, 0)


def passthrough_timing() -> dict:
    """Output option: every frame once with its own timestamp (-vsync before ffmpeg 5.1)."""
    return {"fps_mode" if ffmpeg_version() >= (5, 1) else "vsync": "passthrough"}


def named(path: str | os.PathLike) -> str:
    """The path as the user knows it: a symlink (data/source.mp4) also names its target."""
    path = Path(path)
    return f"{path} (= {path.resolve()})" if path.is_symlink() else str(path)


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{named(path)}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{named(path)}: file is empty")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(f"{named(path)}: {_unreadable(path, e)}") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{named(path)}: contains no video stream")
    return container


MAX_PIXELS = 1 << 28  # ffmpeg refuses frames above (w + 128) * (h + 128) = INT_MAX / 8


def _unreadable(path: Path, e: av.error.FFmpegError) -> str:
    """Why av.open failed, in words: a y4m header's impossible size is named."""
    with open(path, "rb") as f:
        head = f.read(256)
    m = re.match(rb"YUV4MPEG2 (?:.* )?W(\d+) (?:.* )?H(\d+)", head.split(b"\n")[0] + b" ")
    w, h = (int(m[1]), int(m[2])) if m else (0, 0)
    if w * h > MAX_PIXELS:
        return f"its y4m header claims {w}x{h} frames, too large to decode (at most {MAX_PIXELS} pixels)"
    return f"not a readable video ({e.strerror or e})"


def probe(path: str | os.PathLike) -> dict:
    """Width, height, fps, codec, pixel format, colour tags, the exact frame count (demuxed;
    fewer packets than the header lists is a truncated file) and `vfr` (frame steps differ)."""
    with open_video(path) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        try:
            pts = [p.pts for p in c.demux(s) if p.size]
        except av.error.FFmpegError as e:
            raise MediaError(f"{named(path)}: corrupt or truncated video ({e.strerror or e})") from None
        if s.frames and len(pts) < s.frames:
            raise MediaError(
                f"{named(path)}: truncated (header lists {s.frames} frames, file holds {len(pts)})"
            )
        steps = np.diff(sorted(p for p in pts if p is not None))
        # millisecond time bases (mkv, webm) round a constant rate to steps 1 ms apart: not VFR
        vfr = bool(len(steps)) and float((steps.max() - steps.min()) * s.time_base) > 0.0011
        return {
            "width": cc.width,
            "height": cc.height,
            "fps": float(s.average_rate or s.guessed_rate or 0),
            "codec": cc.name,
            "pix_fmt": cc.format.name if cc.format else None,
            "colorspace": int(getattr(cc, "colorspace", 2) or 2),
            "color_range": int(getattr(cc, "color_range", 0) or 0),
            "frames": len(pts),
            "vfr": vfr,
            "steps": (int(steps.min()), int(steps.max())) if len(steps) else (0, 0),
        }


def check_video(path: str | os.PathLike) -> dict:
    """probe() plus a decode of the last keyframe interval: a file cut short or damaged at the
    end fails here, naming the file, not later as a frame-count mismatch."""
    info = probe(path)
    with open_video(path) as c:
        s = c.streams.video[0]
        keys = [p.pts for p in c.demux(s) if p.size and p.is_keyframe and p.pts is not None]
    with open_video(path) as c:
        s = c.streams.video[0]
        if keys:
            c.seek(max(keys), stream=s, backward=True, any_frame=False)
        try:
            n = sum(1 for f in c.decode(s) if f.pts is None or not keys or f.pts >= max(keys))
        except av.error.FFmpegError as e:
            raise MediaError(f"{named(path)}: corrupt or truncated video ({e.strerror or e})") from None
    if n == 0:
        raise MediaError(f"{named(path)}: no decodable frames at the end of the file (truncated or corrupt)")
    return info


# ffmpeg 7+ threads each report their end; the cause is among the other lines
_NOISE = re.compile(
    r"Task finished with|Terminating thread with|Error sending frames to|before EOF|Nothing was written"
)


def run_ffmpeg(stream, what: str) -> None:
    """Run an ffmpeg-python graph. A failure is a MediaError that keeps ffmpeg's own words
    (its error lines, less the per-thread noise); the whole stderr goes to the log."""
    import ffmpeg

    try:
        stream.global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y").run(
            cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as e:
        err = (e.stderr or b"").decode(errors="replace")
        print(err, file=sys.stderr)
        lines = [re.sub(r"^(\[[^]]*\] ?)+", "", x).strip() for x in err.splitlines()]
        lines = [x for x in dict.fromkeys(lines) if x and not _NOISE.search(x)] or err.strip().splitlines()[
            -1:
        ]
        raise MediaError(f"{what} failed (ffmpeg: {' | '.join(lines[:3]) or 'no message'})") from None


def link_source(src: str | os.PathLike, out: str | os.PathLike) -> None:
    """Use a local video as the source: checked readable to its end, then symlinked (atomically)."""
    check_video(src)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(src).resolve())
    os.replace(tmp, out)
