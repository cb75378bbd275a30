"""A deterministic synthetic source video with detail and motion, and its true optical flow.

Each scene is a FlyingChairs-like composite (vsr.media.render): a collage of bundled
photographs (shrunk to `photo_scale` of native size, never magnified) moving as a whole, and
3-6 textured cut-outs with their own affine motion; speeds 0.5-4 LR pixels per frame (LR =
the 540p version / 4) in random directions; hard cuts between scenes.

The true flow is written beside the video as an .npz (`flow_path(video)`, e.g.
data/source_flow.npz): `labels_NNNNNN` (uint8 [H, W], the top layer at each pixel of frame
NNNNNN), `poses` (float64 [frames, layers, 3, 3], layer pixel -> frame pixel, NaN where a scene
has fewer layers) and `scene` (int32 [frames]). `true_flow(path, t)` turns them into the dense
backward flow of frame t into t+1 at the source's resolution (scale it by the ratio of widths
for a transcoded copy) and the mask of pixels visible in both frames.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from vsr.errors import ConfigError
from vsr.fs import atomic_path
from vsr.log import get as get_log
from vsr.media.render import make_scene, pair_flow, render

REF_HEIGHT = 540  # speeds are given in LR pixels of this resolution (scale 4)
MAX_LAYERS = 7  # background + at most 6 cut-outs
# x264 threads of the source's encode: fixed, so the bytes do not depend on the machine (x264 is
# deterministic for a given thread count); the one encode runs beside the render processes
ENCODE_THREADS = 8


def flow_path(video: str | Path) -> Path:
    """Where the true flow of a synthetic video lives: beside it, `<stem>_flow.npz`."""
    video = Path(video)
    return video.with_name(f"{video.stem}_flow.npz")


def frames_per_scene(fps: int, seconds_per_scene: float) -> int:
    return max(2, round(seconds_per_scene * fps))


def _scenes(width, height, fps, scenes, seconds_per_scene, seed, photo_scale):
    """The scenes of the sequence in order, all drawn from one generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    n = frames_per_scene(fps, seconds_per_scene)
    for _ in range(scenes):
        yield make_scene(rng, width, height, n, photo_scale, px_per_lr=4.0 * height / REF_HEIGHT)


def _frame(scene, t: int, width: int, height: int):
    """(RGB uint8, labels uint8, poses padded to [MAX_LAYERS, 3, 3]) of frame t of a scene."""
    rgb, labels, poses = render(scene, t, width, height)
    padded = np.full((MAX_LAYERS, 3, 3), np.nan)
    padded[: len(poses)] = poses
    return rgb, labels, padded


def render_sequence(width, height, fps, scenes, seconds_per_scene, seed, photo_scale=0.5):
    """Yield (scene index, RGB uint8 frame, labels uint8, poses [MAX_LAYERS, 3, 3]), in one process."""
    n = frames_per_scene(fps, seconds_per_scene)
    for s, scene in enumerate(_scenes(width, height, fps, scenes, seconds_per_scene, seed, photo_scale)):
        for t in range(n):
            yield s, *_frame(scene, t, width, height)


def render_frames(width, height, fps, scenes, seconds_per_scene, seed):
    """Yield (scene index, RGB uint8 frame) of the synthetic source."""
    for s, rgb, _, _ in render_sequence(width, height, fps, scenes, seconds_per_scene, seed):
        yield s, rgb


_WORKER: dict = {}  # one render process's sequence: its scene generator and current scene


def _worker_init(params: tuple) -> None:
    _WORKER.update(params=params, scenes=None, index=-1, scene=None)


def _scene(s: int):
    """Scene s in this process: the generator is advanced (or restarted) to it."""
    if _WORKER["scenes"] is None or s < _WORKER["index"]:
        _WORKER.update(scenes=_scenes(*_WORKER["params"]), index=-1)
    while _WORKER["index"] < s:
        _WORKER["scene"] = next(_WORKER["scenes"])
        _WORKER["index"] += 1
    return _WORKER["scene"]


def _render_chunk(task: tuple[int, int, int]) -> list:
    """Frames t0..t1-1 of scene s, rendered in a worker process."""
    s, t0, t1 = task
    width, height = _WORKER["params"][:2]
    scene = _scene(s)
    return [(s, *_frame(scene, t, width, height)) for t in range(t0, t1)]


def render_parallel(width, height, fps, scenes, seconds_per_scene, seed, photo_scale=0.5, workers=2, chunk=4):
    """render_sequence's frames, in its order, rendered by `workers` processes (`chunk` frames
    per task, at most 2 tasks per worker in flight: memory stays bounded)."""
    import multiprocessing

    params = (width, height, fps, scenes, seconds_per_scene, seed, photo_scale)
    n = frames_per_scene(fps, seconds_per_scene)
    tasks = iter([(s, t, min(t + chunk, n)) for s in range(scenes) for t in range(0, n, chunk)])
    ctx = multiprocessing.get_context("fork")  # spawn would re-run the calling script
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # stops OpenCV's thread pool: a forked copy of a live one hangs
    try:
        yield from _run_pool(ctx, workers, params, tasks)
    finally:
        cv2.setNumThreads(threads)


def _run_pool(ctx, workers, params, tasks):
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(params,)) as ex:
        pending = deque(ex.submit(_render_chunk, t) for t in itertools.islice(tasks, 2 * workers))
        while pending:
            frames = pending.popleft().result()
            for t in itertools.islice(tasks, 1):
                pending.append(ex.submit(_render_chunk, t))
            yield from frames


def _put(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr))
    zf.writestr(f"{name}.npy", buf.getvalue())


def _check(width, height, photo_scale) -> None:
    if width % 2 or height % 2:
        raise ConfigError(f"source.synthetic: width and height must be even, got {width}x{height}")
    if not 0 < photo_scale <= 1:
        raise ConfigError(
            f"source.synthetic.photo_scale: must be in (0, 1] (never magnified), got {photo_scale}"
        )


def _encode(frames, video: Path, flow: Path, fps: int, crf: int, total: int, scenes: int) -> list[int]:
    """Encode the (scene, rgb, labels, poses) stream to `video` and its labels and poses to
    `flow`; a console line per finished scene. Returns the first frame of every scene."""
    log, t0 = get_log("vsr.media"), time.perf_counter()
    starts, scene_of, poses = [], [], []
    with (
        av.open(str(video), "w", format="mp4") as c,
        zipfile.ZipFile(flow, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        st = None
        for i, (s, rgb, labels, pose) in enumerate(
            tqdm(frames, total=total, desc="synthesize", unit="frame")
        ):
            if st is None:
                st = _stream(c, fps, crf, rgb.shape)
            if not scene_of or s != scene_of[-1]:
                if scene_of:
                    log.info(f"synthesize: scene {s}/{scenes} done ({time.perf_counter() - t0:.0f} s)")
                starts.append(i)
            scene_of.append(s)
            poses.append(pose)
            _put(zf, f"labels_{i:06d}", labels)
            for p in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
        _put(zf, "poses", np.stack(poses))
        _put(zf, "scene", np.array(scene_of, np.int32))
    log.info(f"synthesize: scene {scenes}/{scenes} done ({time.perf_counter() - t0:.0f} s, {total} frames)")
    return starts


def _x264_reproducible() -> dict:
    """x264 options for the same bytes from the same frames on every run: on a CPU with AVX-512,
    x264's AVX2 code (its AVX-512 path gave a different crf encode of identical frames run to
    run on a 2-core AVX-512 AMD EPYC VM; AVX2 and plain C agree with themselves)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    return {"x264-params": "asm=avx2"} if " avx512f" in flags else {}


def _stream(c, fps: int, crf: int, shape):
    st = c.add_stream("libx264", rate=fps)
    st.height, st.width = shape[:2]
    st.pix_fmt = "yuv420p"
    st.options = {
        "crf": str(crf),
        "preset": "veryfast",
        "threads": str(ENCODE_THREADS),
        **_x264_reproducible(),
    }
    st.codec_context.colorspace = 6  # SMPTE170M (BT.601)
    st.codec_context.color_range = 1  # limited
    return st


def synthesize(
    out: str | Path,
    cuts_json: str | Path,
    width=1280,
    height=720,
    fps=60,
    scenes=6,
    seconds_per_scene=1.0,
    seed=0,
    crf=14,
    photo_scale=0.5,
    flow: str | Path | None = None,
    workers: int = 1,
) -> list[int]:
    """Render and encode (libx264, near-lossless) the synthetic source; write the true cuts
    (the first frame of every scene after the first) to `cuts_json` and the true flow to
    `flow` (default: `flow_path(out)`). `workers` > 1 render in that many processes (the same
    frames, the same bytes). Returns the cuts."""
    _check(width, height, photo_scale)
    flow = flow_path(out) if flow is None else Path(flow)
    total = scenes * frames_per_scene(fps, seconds_per_scene)
    args = (width, height, fps, scenes, seconds_per_scene, seed, photo_scale)
    frames = render_parallel(*args, workers=workers) if workers > 1 else render_sequence(*args)
    with atomic_path(out) as tmp, atomic_path(flow) as ftmp:
        cuts = _encode(frames, tmp, ftmp, fps, crf, total, scenes)[1:]
    with atomic_path(cuts_json) as tmp:
        tmp.write_text(json.dumps({"cuts": cuts, "frames": total, "fps": fps}))
    return cuts


def true_flow(path: str | Path, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow [H, W, 2] (float32, x then y, source pixels) of frame t into frame t+1
    and the bool mask of pixels visible in both. Across a scene cut the mask is all False."""
    with np.load(path) as f:
        scene, poses = f["scene"], f["poses"]
        if not 0 <= t < len(scene) - 1:
            raise IndexError(f"{path}: frame pair {t}->{t + 1} out of range (frames 0..{len(scene) - 1})")
        lab0, lab1 = f[f"labels_{t:06d}"], f[f"labels_{t + 1:06d}"]
    flow, valid = pair_flow(poses[t], poses[t + 1], lab0, lab1)
    if scene[t] != scene[t + 1]:
        valid[:] = False
    return flow, valid
