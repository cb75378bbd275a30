"""HTTP(S) download with progress, resume of a partial file, sha256 check and atomic rename."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vsr.media.io import MediaError, check_video

CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, out: str | os.PathLike, sha256: str | None = None, timeout: float = 60) -> Path:
    """Fetch `url` to `out`. A previous partial download (`out.part`) is resumed with an HTTP
    Range request; the finished file is checked against `sha256` (if given) and opened and
    decoded as a video before it is renamed onto `out`. A mismatch or a file that is not a
    readable video is deleted (a rerun downloads afresh) and raises MediaError."""
    out = Path(out)
    part = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            resp = None
        else:
            raise MediaError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise MediaError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
    if resp is not None:
        with resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = resp.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=out.name) as bar,
            ):
                for block in iter(lambda: resp.read(CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
    if sha256:
        got = sha256sum(part)
        if got != sha256.lower():
            part.unlink(missing_ok=True)
            raise MediaError(f"{url}: sha256 mismatch (expected {sha256}, got {got}); partial file deleted")
    try:
        check_video(part)
    except MediaError as e:
        part.unlink(missing_ok=True)
        raise MediaError(
            f"{url}: downloaded file is not a usable video ({str(e).split(': ', 1)[-1]}); deleted"
        ) from None
    os.replace(part, out)
    return out
