"""Scene split with PySceneDetect's content detector, cut frame-exactly in one ffmpeg pass."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from vsr.media.io import MediaError, atomic_dir, atomic_path, ffmpeg_exe, probe


def detect_cuts(path: str | os.PathLike, threshold: float, min_scene_len: int) -> tuple[list[int], int]:
    """Return (first frame of every scene after the first, total frames)."""
    from scenedetect import ContentDetector, detect

    info = probe(path)  # raises a one-line MediaError for missing / corrupt files
    try:
        scenes = detect(
            str(path),
            ContentDetector(threshold=threshold, min_scene_len=min_scene_len),
            start_in_scene=True,
        )
    except Exception as e:  # PySceneDetect / OpenCV errors are many types
        raise MediaError(f"{path}: scene detection failed ({e})") from None
    cuts = [s[0].frame_num for s in scenes[1:]]
    return cuts, info["frames"]


def assign_split(i: int, val_every: int) -> str:
    """Every `val_every`-th scene (the last of each group) is validation, the rest train."""
    return "val" if val_every > 0 and i % val_every == val_every - 1 else "train"


def split_scenes(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    csv_path: str | os.PathLike,
    threshold: float = 27.0,
    min_scene_len: int = 15,
    val_every: int = 4,
    crf: int = 12,
    log=print,
) -> list[dict]:
    """Detect scenes of `src`, write `out_dir/scene_NNN.mp4` (video only, keyframe at every
    cut, near-lossless) and `csv_path` (scene, split, start/end frame, frames)."""
    import ffmpeg

    cuts, total = detect_cuts(src, threshold, min_scene_len)
    if not cuts:
        raise MediaError(
            f"{src}: no scene cut found (1 scene of {total} frames); need at least 2 scenes "
            f"for a train/val split (try a lower scenes.threshold than {threshold})"
        )
    bounds = [0, *cuts, total]
    rows = []
    for i in range(len(bounds) - 1):
        rows.append(
            {
                "scene": f"scene_{i:03d}",
                "split": assign_split(i, val_every),
                "start_frame": bounds[i],
                "end_frame": bounds[i + 1],
                "frames": bounds[i + 1] - bounds[i],
            }
        )
    if not any(r["split"] == "train" for r in rows) or not any(r["split"] == "val" for r in rows):
        raise MediaError(
            f"{src}: {len(rows)} scenes cannot give both a train and a val split "
            f"with scenes.val_every={val_every}"
        )
    log(f"{src}: {len(rows)} scenes, cuts at frames {cuts}")
    force = "expr:" + "+".join(f"eq(n,{c})" for c in cuts)
    with atomic_dir(out_dir) as tmp:
        (
            ffmpeg.input(str(src))
            .output(
                str(Path(tmp) / "scene_%03d.mp4"),
                an=None,
                vcodec="libx264",
                crf=crf,
                preset="veryfast",
                pix_fmt="yuv420p",
                force_key_frames=force,
                f="segment",
                segment_frames=",".join(map(str, cuts)),
                reset_timestamps=1,
            )
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin")
            .run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
        )
        for r in rows:
            got = probe(Path(tmp) / f"{r['scene']}.mp4")["frames"]
            if got != r["frames"]:
                raise MediaError(f"{src}: {r['scene']} has {got} frames, expected {r['frames']}")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def read_scenes(csv_path: str | os.PathLike) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))
