"""HTTP(S) download with progress, resume of a partial file, sha256 check and atomic rename."""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vsr.fs import sha256sum
from vsr.log import get as get_log
from vsr.media.io import MediaError, check_video

CHUNK = 1 << 20
ATTEMPTS = 3  # a cut connection is resumed from the bytes already in .part this many times

__all__ = ["download", "sha256sum"]


class _Short(MediaError):
    """The server closed the connection before Content-Length bytes arrived."""


def _open(url: str, have: int, timeout: float):
    """The response for bytes `have`- of `url`, or None when .part already holds them all."""
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            return None
        raise MediaError(f"{url}: HTTP {e.code} {e.reason}") from None
    except TimeoutError:
        raise MediaError(f"{url}: no answer within {timeout:g} s (source.timeout)") from None
    except (urllib.error.URLError, OSError) as e:
        raise MediaError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None


class _Progress:
    """A tqdm bar (the rule's log) and a console line every `every` seconds."""

    def __init__(self, name: str, total: int | None, have: int, every: float = 10.0):
        self.bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=name)
        self.name, self.total, self.every, self.t0, self.last = name, total, every, time.monotonic(), 0.0
        self.got, self.start = have, have

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.got += n
        now = time.monotonic() - self.t0
        if now - self.last >= self.every:
            self.last = now
            of = f" of {self.total / 1e6:.1f} MB ({100 * self.got / self.total:.0f}%)" if self.total else ""
            rate = (self.got - self.start) / max(now, 1e-9) / 1e6
            get_log("vsr.media").info(f"download {self.name}: {self.got / 1e6:.1f} MB{of}, {rate:.2f} MB/s")


def _fetch(url: str, part: Path, timeout: float, deadline: float | None, t0: float, every: float) -> None:
    """Append the rest of `url` to `part`; every block is written as it arrives, so a stall or
    a cut keeps what came (MediaError naming the URL and the setting; _Short for a cut)."""
    have = part.stat().st_size if part.exists() else 0
    resp = _open(url, have, timeout)
    if resp is None:
        return
    with resp:
        if have and resp.status != 206:  # server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = int(length) + have if length is not None else None
        bar = _Progress(part.name.removesuffix(".part"), total, have, every)
        with open(part, "ab" if have else "wb") as f:
            while True:
                if deadline is not None and time.monotonic() - t0 > deadline:
                    raise MediaError(
                        f"{url}: not finished after {deadline:g} s (source.deadline); "
                        f"{f.tell()} bytes kept in {part}, a rerun resumes"
                    )
                try:
                    block = resp.read1(CHUNK)
                except TimeoutError:
                    raise MediaError(
                        f"{url}: no data for {timeout:g} s (source.timeout); "
                        f"{f.tell()} bytes kept in {part}, a rerun resumes"
                    ) from None
                except (ConnectionError, http.client.IncompleteRead):
                    break  # a cut: the length check below resumes it
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        bar.bar.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Short(f"{url}: connection closed at {got} of {total} bytes; {got} bytes kept in {part}")


def download(
    url: str,
    out: str | os.PathLike,
    sha256: str | None = None,
    timeout: float = 60,
    deadline: float | None = None,
    progress_every: float = 10.0,
) -> Path:
    """Fetch `url` to `out`. A partial download (`out.part`, from a cut connection or an
    earlier run) is resumed with an HTTP Range request; `timeout`: seconds without data
    (source.timeout), `deadline`: seconds for the whole download (source.deadline); a console
    line every `progress_every` seconds. The
    finished file is checked against `sha256` (if given) and opened and decoded as a video
    before it is renamed onto `out`. A mismatch or a file that is not a readable video is
    deleted (a rerun downloads afresh) and raises MediaError."""
    out = Path(out)
    part = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _fetch(url, part, timeout, deadline, t0, progress_every)
            break
        except _Short as e:
            if attempt == ATTEMPTS:
                raise MediaError(f"{e} after {ATTEMPTS} attempts, a rerun resumes") from None
            get_log("vsr.media").warning(f"{e}: resuming (attempt {attempt + 1} of {ATTEMPTS})")
    _verify(url, part, sha256)
    os.replace(part, out)
    return out


def _verify(url: str, part: Path, sha256: str | None) -> None:
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
