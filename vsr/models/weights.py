"""Reading weight files safely, and one report of how a state dict differs from a model.

Files are unpickled with `weights_only=True`: tensors, plain containers and numbers only (plus
numpy arrays, which a train_state.pt's RNG state holds), so a file that would build any other
object or call a function (a malicious `__reduce__`) is refused before anything in it runs.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from vsr.errors import CheckpointError

# numpy arrays (np.random.get_state() in train_state.pt): data, not code
_NUMPY = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


def read(path: str | os.PathLike, what: str = "checkpoint"):
    """The unpickled content of `path` (CPU tensors); CheckpointError naming the file if it is
    missing, not a PyTorch file, or holds anything but data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        with torch.serialization.safe_globals(_NUMPY):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        bad = re.search(r"GLOBAL ([\w.]+)", str(e))
        if bad:
            raise CheckpointError(
                f"{path}: refused: it would call or build {bad.group(1)} when loaded "
                "(a checkpoint holds only tensors and plain data); it was not run"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch {what} ({_first_line(e)})") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a PyTorch {what} ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__


def mismatch(own: dict, state: dict) -> str:
    """'' when `state` has exactly the keys and shapes of `own` (a model's state_dict), else
    one short line: the first few missing / unexpected / reshaped keys and how many more."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for name, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{name}: {', '.join(items[:3])}{more}")
    return "; ".join(parts)


def load_into(module: torch.nn.Module, state, path, what: str) -> None:
    """`state` into `module` strictly; a CheckpointError in one line when it does not fit."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds no state dict for {what}")
    why = mismatch(module.state_dict(), state)
    if why:
        raise CheckpointError(f"{path}: weights do not match {what} ({why})")
    module.load_state_dict(state, strict=True)
