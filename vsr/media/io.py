"""Shared media helpers: the ffmpeg binary, probing with PyAV, atomic outputs, one-line errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import av


class MediaError(RuntimeError):
    """A bad input file: the message is one line that names the file and the problem."""


def ffmpeg_exe() -> str:
    """ffmpeg from PATH, else the binary bundled with imageio-ffmpeg (no system requirement)."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: not a readable video ({e.strerror or e})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: contains no video stream")
    return container


def probe(path: str | os.PathLike) -> dict:
    """Width, height, fps, codec, pixel format, colour tags and the exact frame count (demuxed)."""
    with open_video(path) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        try:
            frames = sum(1 for p in c.demux(s) if p.size)
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: corrupt or truncated video ({e.strerror or e})") from None
        return {
            "width": cc.width,
            "height": cc.height,
            "fps": float(s.average_rate or s.guessed_rate or 0),
            "codec": cc.name,
            "pix_fmt": cc.format.name if cc.format else None,
            "colorspace": int(getattr(cc, "colorspace", 2) or 2),
            "color_range": int(getattr(cc, "color_range", 0) or 0),
            "frames": frames,
        }


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `final`; rename it onto `final` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike):
    """Yield a temporary directory beside `final`; it replaces `final` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def link_source(src: str | os.PathLike, out: str | os.PathLike) -> None:
    """Use a local video as the source: checked readable, then symlinked (atomically)."""
    probe(src)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(src).resolve())
    os.replace(tmp, out)
