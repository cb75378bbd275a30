"""A run directory's state: one owner at a time, checkpoints with a fallback, full history.

Files in `runs/<res>/<cell>/`:
- `.lock`: held (flock) by the trainer that owns the directory; the kernel drops it when that
  process dies, so a killed owner never blocks a rerun, and a live one is never joined.
- `train_state.pt` (+ `train_state.prev.pt`, the one before): everything to continue a run.
- `history.jsonl`: one line per train iteration / validation, never renamed or truncated past
  the checkpoint it belongs to; `metrics.jsonl` (the workflow's output) is a copy made at the end.
So deleting the workflow's outputs (`--forcerun`, a raised `train.iterations`) continues the run
with its whole history; a history that does not cover the checkpoint starts the run clean.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from vsr.errors import RunError
from vsr.fs import atomic_path


class RunLock:
    def __init__(self, out: Path):
        self.path = out / ".lock"
        self.fd = None

    def acquire(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise RunError(
                f"{self.path.parent}: another trainer (pid {owner}) is writing this run; "
                "stop it (or wait for it) before starting again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def _no_space_is_one_line(path: Path):
    """A write that fails on a full disk becomes RunError("no space left writing <path>")."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if _disk_full(e, path.parent):
            raise RunError(f"no space left writing {path}") from None
        raise


def _disk_full(e: Exception, folder: Path) -> bool:
    """ENOSPC, or torch's zip writer failing ("unexpected pos") on a disk with no room left."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    return "unexpected pos" in str(e) or free < 1 << 20


def atomic_save(obj, path: Path, keep_as: Path | None = None) -> None:
    """torch.save(obj) onto `path`, whole or not at all (no temporary left behind); a full disk
    is one line naming the file. `keep_as`: where the file it replaces moves, once the new one
    is written whole."""
    with _no_space_is_one_line(path), atomic_path(path) as tmp:
        torch.save(obj, tmp)
        if keep_as is not None and path.exists():
            os.replace(path, keep_as)


def save_state(state: dict, out: Path) -> None:
    """train_state.pt, keeping the previous one as train_state.prev.pt (a failed write leaves
    both as they were)."""
    atomic_save(state, out / "train_state.pt", keep_as=out / "train_state.prev.pt")


def read_state(path, device="cpu") -> dict:
    """A train_state file, loaded as data only (weights_only: a checkpoint never runs code)."""
    st = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(st, dict) or "iter" not in st:
        raise ValueError("not a train_state checkpoint")
    return st


def load_state(out: Path, device, log) -> tuple[dict | None, Path | None]:
    """The newest readable checkpoint and its file (falling back to the previous one, saying
    so), or (None, None). Temporaries of a write that was killed are removed."""
    for stale in out.glob(".train_state.pt.*"):
        stale.unlink(missing_ok=True)
    cur, prev = out / "train_state.pt", out / "train_state.prev.pt"
    errors = []
    for p in (cur, prev):
        if not p.exists():
            continue
        try:
            st = read_state(p, device)
        except Exception as e:  # truncated, corrupt, foreign, unsafe
            errors.append(f"{p} is unreadable ({type(e).__name__}: {str(e)[:80]})")
            continue
        if errors:
            log.warning(f"warning: {errors[0]}: continuing from the previous checkpoint {p}")
        return st, p
    if errors:
        raise RunError(f"{'; '.join(errors)}. Delete {out} (or the files named) to start this run over")
    return None, None


def discard_state(out: Path) -> None:
    for name in ("train_state.pt", "train_state.prev.pt", "history.jsonl"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "tb", ignore_errors=True)


class History:
    """history.jsonl: records of every iteration the checkpoint covers, then the new ones."""

    def __init__(self, out: Path):
        self.path = out / "history.jsonl"

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]

    def covers(self, it: int) -> bool:
        """True if there is one train record for each of iterations 1..it."""
        got = [r["iter"] for r in self.records() if r.get("kind") == "train" and r["iter"] <= it]
        return got == list(range(1, it + 1))

    def truncate(self, it: int) -> None:
        """Drop records past the checkpoint's iteration (they are about to be redone)."""
        keep = [r for r in self.records() if r["iter"] <= it]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))

    def append(self, recs: list[dict]) -> None:
        if recs:
            with _no_space_is_one_line(self.path), open(self.path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in recs))

    def publish(self, dest: Path) -> None:
        with atomic_path(dest) as tmp:
            shutil.copyfile(self.path, tmp)


def rng_state():
    """Every generator's state as tensors and plain values (loadable with weights_only)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(s):
    torch.set_rng_state(s["torch"].cpu())
    kind, key, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(s["python"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in s["cuda"]])
