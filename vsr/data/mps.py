"""CUDA MPS for decoder processes: one shared GPU context instead of time-sliced ones."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vsr.errors import RunError


@contextlib.contextmanager
def mps_daemon(on: bool):
    """While the block runs, CUDA contexts of this process and its children go through an MPS
    server: a control daemon is started here (and stopped after) unless one already runs.
    Call it before CUDA is first used in this process. `on` False: does nothing."""
    if not on:
        yield False
        return
    pipe = Path(os.environ.setdefault("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    if (pipe / "control").exists():  # someone else's daemon: use it, leave it running
        yield True
        return
    ctl = shutil.which("nvidia-cuda-mps-control")
    if ctl is None:
        raise RunError("--mps: nvidia-cuda-mps-control is not on PATH")
    os.environ.setdefault("CUDA_MPS_LOG_DIRECTORY", tempfile.mkdtemp(prefix="vsr-mps-log."))
    pipe.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([ctl, "-d"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RunError(f"--mps: nvidia-cuda-mps-control -d failed ({(r.stderr or r.stdout).strip()})")
    try:
        yield True
    finally:
        subprocess.run([ctl], input="quit\n", capture_output=True, text=True)
