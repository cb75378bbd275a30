"""A per-file keyframe index (demux only, no decode), cached on disk, checked when built."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from pathlib import Path

import av
import numpy as np

from vsr.fs import atomic_path
from vsr.log import get as get_log
from vsr.media.io import MediaError, open_video

CODECS = ("h264", "hevc")


@dataclass
class VideoIndex:
    path: str
    width: int
    height: int
    codec: str
    colorspace: int
    color_range: int
    time_base: float
    pts: list[int]  # presentation timestamps of every frame, in display order
    keyframes: list[int]  # frame indices of keyframes (random-access points)

    @cached_property
    def position(self) -> dict[int, int]:
        """pts -> frame index."""
        return {p: i for i, p in enumerate(self.pts)}

    @property
    def frames(self) -> int:
        return len(self.pts)

    def keyframe_before(self, frame: int) -> int:
        k = np.searchsorted(self.keyframes, frame, side="right") - 1
        return self.keyframes[max(int(k), 0)]


def _cache_file(path: Path, cache_dir: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    return cache_dir / f"{path.stem}.{key[:16]}.json"


def cache_dirs(cache_dir) -> list[Path]:
    """Where index files are looked up and written, in order: the dataset's own cache dir,
    then the user's cache ($XDG_CACHE_HOME/vsr/index, ~/.cache/vsr/index) for read-only data."""
    if not cache_dir:
        return []
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vsr" / "index"
    return [Path(cache_dir), user]


def _store(idx: VideoIndex, path: Path, dirs: list[Path]) -> None:
    """Write the index to the first writable cache dir (whole or not at all); none writable:
    keep it in memory only and say so once per directory."""
    for d in dirs:
        try:
            with atomic_path(_cache_file(path, d)) as tmp:
                tmp.write_text(json.dumps(asdict(idx)))
            return
        except OSError as e:
            _unwritable(str(d), str(e.strerror or e))


@cache
def _unwritable(d: str, why: str) -> None:
    """Said once per directory and reason."""
    get_log("vsr.data").warning(f"index cache {d} not writable ({why}); using the next")


def build_index(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> VideoIndex:
    """Demux `path` once; raise a one-line MediaError for anything that cannot be indexed
    exactly (missing, corrupt/truncated, not H.264/HEVC 4:2:0, variable frame rate)."""
    path = Path(path)
    dirs = cache_dirs(cache_dir) if path.exists() else []
    for d in dirs:
        cache = _cache_file(path, d)
        if cache.is_file():
            return VideoIndex(**{**json.loads(cache.read_text()), "path": str(path)})  # as named now
    with open_video(path) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        if cc.name not in CODECS:
            raise MediaError(f"{path}: codec {cc.name} cannot be indexed exactly (need H.264/HEVC)")
        if cc.format is None or cc.format.name != "yuv420p":
            fmt = cc.format.name if cc.format else "unknown"
            raise MediaError(f"{path}: pixel format {fmt} is not supported (need yuv420p)")
        pts, keys = [], []
        try:
            for p in c.demux(s):
                if p.size == 0 or p.pts is None:
                    continue
                pts.append(p.pts)
                keys.append(p.pts if p.is_keyframe else None)
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: corrupt or truncated video ({e.strerror or e})") from None
        if not pts:
            raise MediaError(f"{path}: no video packets (empty or truncated file)")
        order = sorted(pts)
        steps = np.diff(order)
        if len(steps) and (steps.min() != steps.max()):
            raise MediaError(
                f"{path}: variable frame rate (frame steps {steps.min()}..{steps.max()}"
                " ticks); re-encode at a constant rate"
            )
        pos = {p: i for i, p in enumerate(order)}
        keyframes = sorted(pos[k] for k in keys if k is not None)
        if not keyframes or keyframes[0] != 0:
            raise MediaError(f"{path}: first frame is not a keyframe")
        idx = VideoIndex(
            str(path),
            cc.width,
            cc.height,
            cc.name,
            int(getattr(cc, "colorspace", 2) or 2),
            int(getattr(cc, "color_range", 0) or 0),
            float(s.time_base),
            order,
            keyframes,
        )
    _check_tail(idx)
    _store(idx, path, dirs)
    return idx


def _check_tail(idx: VideoIndex) -> None:
    """Decode the last GOP: a truncated file fails here, not mid-epoch."""
    with open_video(idx.path) as c:
        s = c.streams.video[0]
        k = idx.keyframes[-1]
        c.seek(idx.pts[k], stream=s, backward=True, any_frame=False)
        want = set(idx.pts[k:])
        try:
            for f in c.decode(s):
                want.discard(f.pts)
        except av.error.FFmpegError as e:
            raise MediaError(f"{idx.path}: corrupt or truncated video ({e.strerror or e})") from None
    if want:
        raise MediaError(
            f"{idx.path}: truncated or corrupt: {len(want)} of the last {idx.frames - k} frames do not decode"
        )
