"""`vsr prepare`: synthetic scenes encoded per resolution with PyAV (no ffmpeg binary needed),
split into train/val by the workflow's rule (vsr.media.scenes.assign_split, scenes.val_every)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

# the workflow's config in the checkout this package runs from
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def _prepare_scene(args):
    from vsr.media.scenes import assign_split
    from vsr.media.synth import render_sequence
    from vsr.media.transcode import RESOLUTIONS, encode_frames, extract_frames

    i, out, res_list, w, h, fps, seconds, seed, val_every, gop, photo_scale = args
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    frames = [f for _, f, _, _ in render_sequence(w, h, fps, i + 1, seconds, seed, photo_scale, only=i)]
    split = assign_split(i, val_every)
    for res in res_list:
        rw, rh = RESOLUTIONS[res]
        scaled = [cv2.resize(f, (rw, rh), interpolation=cv2.INTER_AREA) for f in frames]
        mp4 = Path(out) / res / "scenes" / split / f"scene_{i:03d}.mp4"
        encode_frames(scaled, mp4, fps, keyframe_interval=gop)
        extract_frames(mp4, Path(out) / res / "frames" / split / f"scene_{i:03d}")
    return i, len(frames)


def config_val_every(config: str | os.PathLike = DEFAULT_CONFIG) -> int:
    """scenes.val_every of the workflow's config file: the one split rule of both data paths."""
    import yaml

    path = Path(config)
    if not path.is_file():
        raise SystemExit(f"{path}: config file not found (pass --val-every N or --config FILE)")
    try:
        value = (yaml.safe_load(path.read_text()) or {}).get("scenes", {}).get("val_every")
    except (yaml.YAMLError, AttributeError) as e:
        raise SystemExit(f"{path}: cannot read scenes.val_every ({type(e).__name__})") from None
    if not isinstance(value, int) or value < 2:
        raise SystemExit(f"{path}: scenes.val_every must be an integer >= 2, got {value!r}")
    return value


def prepare(a) -> None:
    """Synthetic scenes encoded per resolution with PyAV (no ffmpeg binary needed). The split
    is the workflow's: `a.val_every`, else scenes.val_every of `a.config` (config.yaml)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    if a.val_every is None:
        a.val_every = config_val_every(a.config or DEFAULT_CONFIG)
    print(
        f"val split: scenes i with i % {a.val_every} == {a.val_every - 1} (val_every {a.val_every})",
        flush=True,
    )
    if not 0 < a.photo_scale <= 1:
        raise SystemExit(f"--photo-scale: must be in (0, 1] (never magnified), got {a.photo_scale}")
    w, h = a.render
    jobs = [
        (i, str(a.out), a.res, w, h, a.fps, a.seconds, a.seed, a.val_every, a.gop, a.photo_scale)
        for i in range(a.scenes)
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as ex:
        for i, n in ex.map(_prepare_scene, jobs):
            print(f"scene {i}: {n} frames", flush=True)
    print(json.dumps({"prepared_s": round(time.perf_counter() - t0, 1)}))
