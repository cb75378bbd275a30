"""Scene split with PySceneDetect's content detector, cut frame-exactly in one ffmpeg pass."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

from vsr.fs import atomic_dir, atomic_path, sha256sum
from vsr.log import get as get_log
from vsr.media.io import MediaError, check_fits, named, passthrough_timing, probe, run_ffmpeg


def detect_cuts(path: str | os.PathLike, threshold: float, min_scene_len: int) -> tuple[list[int], dict]:
    """Return (first frame of every scene after the first, probe() of `path`); a file whose
    frames do not all decode is a MediaError naming it (a truncated source)."""
    from scenedetect import ContentDetector, detect

    info = probe(path)  # raises a one-line MediaError for missing / corrupt / truncated files
    try:
        scenes = detect(
            str(path),
            ContentDetector(threshold=threshold, min_scene_len=min_scene_len),
            start_in_scene=True,
        )
    except Exception as e:  # PySceneDetect / OpenCV errors are many types
        raise MediaError(f"{named(path)}: scene detection failed ({e})") from None
    decoded = scenes[-1][1].frame_num if scenes else 0
    if decoded != info["frames"]:
        raise MediaError(
            f"{named(path)}: only {decoded} of its {info['frames']} frames decode (truncated or corrupt file)"
        )
    return [s[0].frame_num for s in scenes[1:]], info


def assign_split(i: int, val_every: int) -> str:
    """Every `val_every`-th scene (the last of each group) is validation, the rest train."""
    return "val" if val_every > 0 and i % val_every == val_every - 1 else "train"


def scene_rows(bounds: list[int], min_frames: int, val_every: int) -> list[dict]:
    """One row per scene; a scene shorter than `min_frames` cannot hold a training window
    and is marked split=dropped (kept in scenes.csv, never transcoded or trained on)."""
    rows, kept = [], 0
    for i in range(len(bounds) - 1):
        frames = bounds[i + 1] - bounds[i]
        split = "dropped"
        if frames >= min_frames:
            split, kept = assign_split(kept, val_every), kept + 1
        rows.append(
            {
                "scene": f"scene_{i:03d}",
                "split": split,
                "start_frame": bounds[i],
                "end_frame": bounds[i + 1],
                "frames": frames,
            }
        )
    return rows


STANDARD_RATES = [Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1))]
STANDARD_RATES += [2 * r for r in STANDARD_RATES]


def retime(src, out, info: dict, crf: int, log) -> None:
    """A variable-frame-rate source, re-encoded with every frame kept once at a constant
    rate (its average): scene detection and the split then count frames exactly."""
    import ffmpeg

    stream, opts, fps = constant_rate(ffmpeg.input(str(src)).video, info["fps"])
    log(
        f"{named(src)}: variable frame rate (frame steps {info['steps'][0]}..{info['steps'][1]} ticks): "
        f"every frame kept once, retimed to a constant {float(fps):.3f} fps before the split"
    )
    out = stream.output(str(out), vcodec="libx264", crf=crf, preset="veryfast", **opts)
    run_ffmpeg(out, f"{named(src)}: retiming to a constant frame rate")


def constant_rate(stream, fps: float):
    """Frame n at n / fps exactly (no frame dropped or repeated): the filters, the output
    options (ffmpeg 7+ keeps the input's timing unless told) and the rate as a fraction."""
    fps = Fraction(fps).limit_denominator(1001)
    near = min(STANDARD_RATES, key=lambda r: abs(r / fps - 1))  # 29.994 (rounded steps) -> 30
    fps = near if abs(near / fps - 1) < 0.002 else fps
    tb = f"{fps.denominator}/{fps.numerator}"
    return (
        stream.filter("settb", tb).filter("setpts", "N"),
        {**passthrough_timing(), "enc_time_base": tb},
        fps,
    )


def split_scenes(src, out_dir, csv_path, crf: int = 12, log=print, resolutions=(), **kw) -> list[dict]:
    """Detect scenes of `src`, write `out_dir/scene_NNN.mp4` (video only, keyframe at every
    cut, near-lossless, even size, constant rate) and `csv_path` (scene, split, start/end
    frame, frames, the source's sha256: a new source gives a new scenes.csv). A source smaller
    than one of `resolutions` is refused (ground truth is never magnified). Keywords:
    threshold, min_scene_len, val_every, min_frames (`scene_rows`)."""
    info = probe(src)
    check_fits(info["width"] - info["width"] % 2, info["height"] - info["height"] % 2, resolutions)
    opts = {**kw, "crf": crf, "source_sha256": sha256sum(src)}
    if not info["vfr"]:
        return _split(src, named(src), out_dir, csv_path, opts, log)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".retime.", dir=Path(out_dir).parent) as d:
        retime(src, Path(d) / "cfr.mp4", info, crf, log)
        return _split(Path(d) / "cfr.mp4", named(src), out_dir, csv_path, opts, log)


def plan(cuts: list[int], total: int, name: str, opts: dict, log) -> list[dict]:
    """scenes.csv's rows for `cuts` of a `total`-frame source; scenes shorter than
    max(min_scene_len, min_frames) are dropped (split=dropped). Errors name the user's file."""
    threshold, val_every = opts.get("threshold", 27.0), opts.get("val_every", 4)
    if not cuts:
        raise MediaError(
            f"{name}: no scene cut found (1 scene of {total} frames); need at least 2 scenes "
            f"for a train/val split (try a lower scenes.threshold than {threshold})"
        )
    shortest = max(opts.get("min_scene_len", 15), opts.get("min_frames", 1))
    rows = scene_rows([0, *cuts, total], shortest, val_every)
    if not any(r["split"] == "train" for r in rows) or not any(r["split"] == "val" for r in rows):
        raise MediaError(
            f"{name}: {len(rows)} scenes ({sum(r['split'] == 'dropped' for r in rows)} shorter than "
            f"{shortest} frames) cannot give both a train and a val split with scenes.val_every={val_every}"
        )
    log(f"{name}: {len(rows)} scenes, cuts at frames {cuts}")
    for r in rows:
        r["source_sha256"] = opts["source_sha256"]
        if r["split"] == "dropped":
            log(f"{r['scene']}: dropped, {r['frames']} frames < {shortest} (min_scene_len / train.frames)")
    return rows


def _segment(src, name: str, info: dict, cuts: list[int], out_dir: Path, crf: int, log) -> None:
    """Cut `src` at `cuts` into out_dir/scene_%03d.mp4 in one ffmpeg pass, keyframes at the cuts."""
    import ffmpeg

    stream = ffmpeg.input(str(src)).video
    w, h = info["width"], info["height"]
    if w % 2 or h % 2:
        log(f"{name}: odd size {w}x{h}: cropped to {w - w % 2}x{h - h % 2} (yuv420p needs even dimensions)")
        stream = stream.filter("crop", w - w % 2, h - h % 2, 0, 0)
    stream, rate_opts, _ = constant_rate(stream, info["fps"])  # exact steps, as the index needs
    out = stream.output(
        str(Path(out_dir) / "scene_%03d.mp4"),
        vcodec="libx264",
        crf=crf,
        preset="veryfast",
        pix_fmt="yuv420p",
        force_key_frames="expr:" + "+".join(f"eq(n,{c})" for c in cuts),
        **rate_opts,
        f="segment",
        segment_frames=",".join(map(str, cuts)),
        reset_timestamps=1,
    )
    run_ffmpeg(out, f"{name}: scene split")


def _split(src, name: str, out_dir, csv_path, opts: dict, log) -> list[dict]:
    """split_scenes of a constant-rate `src`; errors name the user's file as `name`."""
    cuts, info = detect_cuts(src, opts.get("threshold", 27.0), opts.get("min_scene_len", 15))
    rows = plan(cuts, info["frames"], name, opts, log)
    with atomic_dir(out_dir) as tmp:
        _segment(src, name, info, cuts, tmp, opts["crf"], log)
        for r in rows:
            scene = Path(tmp) / f"{r['scene']}.mp4"
            if r["split"] == "dropped":
                scene.unlink()
                continue
            got = probe(scene)["frames"]
            if got != r["frames"]:
                raise MediaError(f"{name}: {r['scene']} has {got} frames, expected {r['frames']}")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def read_scenes(csv_path: str | os.PathLike) -> list[dict]:
    """The train and val scenes of scenes.csv (dropped ones left out)."""
    with open(csv_path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] != "dropped"]


def prune(folder: str | os.PathLike, rows: list[dict], kind: str, out: str | os.PathLike) -> list[str]:
    """Make `folder` (data/{res}/scenes or data/{res}/frames) hold exactly the scenes of
    `rows`: files of an earlier source, scenes that changed split and hidden temporaries of a
    killed job are removed (said on the console). Writes the kept entries to `out`."""
    folder = Path(folder)
    suffix = ".mp4" if kind == "scenes" else ""
    want = {f"{r['split']}/{r['scene']}{suffix}" for r in rows}
    log = get_log("vsr.media")
    for split in ("train", "val"):
        d = folder / split
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if f"{split}/{p.name}" not in want:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                log.info(f"{folder}: removed {split}/{p.name} (not a scene of data/scenes.csv)")
    missing = sorted(w for w in want if not (folder / w).exists())
    if missing:
        raise MediaError(f"{folder}: missing {', '.join(missing)} of data/scenes.csv")
    with atomic_path(out) as tmp:
        tmp.write_text("".join(f"{w}\n" for w in sorted(want)))
    return sorted(want)
