"""`vsr upscale` / `vsr evaluate` speed on this machine: a table of seconds per frame.

    python -m vsr.bench.infer --video bikes.mp4 --checkpoint final.pt [--frames 24] [--reference 1]

Rows: `reference` is the model's own forward on the bilinearly upsampled window (what
`vsr upscale` ran before vsr.infer.predict: DIS and every conv at HR size, whole-image convs);
`predict` is vsr.infer.predict.predict_y alone; `upscale` and `evaluate` are the whole commands
(decode, model, colour, H.264 encode / metrics) on the first `--frames` frames; evaluate runs
twice: on the clip as HR (the model at a quarter of its size) and on upscale's output as HR
(the model at the clip's own size: the upscale's work plus bicubic and the metrics at HR).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import pandas as pd
import torch

from vsr.infer.checkpoint import centred_windows, load_model, read_frames
from vsr.infer.evaluate import evaluate
from vsr.infer.predict import pad_to, predict_y, upsample
from vsr.infer.upscale import upscale


def _cut(video: Path, frames: int, out: Path) -> Path:
    """The first `frames` frames of `video`, re-encoded near-losslessly (a short clip to time)."""
    with av.open(str(video)) as c, av.open(str(out), "w") as o:
        s = c.streams.video[0]
        st = o.add_stream("libx264", rate=s.average_rate or 25)
        st.width, st.height, st.pix_fmt, st.options = s.width, s.height, "yuv420p", {"crf": "12"}
        for i, f in enumerate(c.decode(s)):
            if i >= frames:
                break
            for p in st.encode(f.reformat(format="yuv420p")):
                o.mux(p)
        for p in st.encode(None):
            o.mux(p)
    return out


@torch.no_grad()
def _per_frame(fn, model, video, frames: int) -> float:
    it, _ = read_frames(video)
    t, cpu, n = 0.0, 0.0, 0
    for window in centred_windows((f for f, _ in it), model.frames):
        if n >= frames:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        fn(model, torch.stack(window))
        t, cpu, n = t + time.perf_counter() - t0, cpu + time.process_time() - c0, n + 1
    it.close()
    return t / max(n, 1), cpu / max(n, 1)


def _reference(model, lr):
    x, (H, W) = pad_to(upsample(lr)[None])
    return model(x)[0, :, :H, :W].clamp(0, 1)


def _evaluate(checkpoint, clip) -> tuple[int, float, float]:
    """(frames, s/frame, CPU s/frame) of `vsr evaluate` on one clip."""
    t0, c0 = time.perf_counter(), time.process_time()
    df = evaluate([checkpoint], [clip], "cpu")
    n = int(df["frames"].iloc[0])
    return n, (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def bench(video, checkpoint, frames: int, reference: int) -> pd.DataFrame:
    model, _ = load_model(checkpoint)
    rows = []
    if reference:
        rows.append(
            ("reference (model forward at HR)", reference, *_per_frame(_reference, model, video, reference))
        )
    rows.append(("predict (vsr.infer.predict)", frames, *_per_frame(predict_y, model, video, frames)))
    with tempfile.TemporaryDirectory() as d:
        clip = _cut(Path(video), frames, Path(d) / "clip.mp4")
        c0 = time.process_time()
        s = upscale(clip, up := Path(d) / "up.mp4", checkpoint, "cpu")
        cpu = (time.process_time() - c0) / s["frames"]  # x264's threads are in this process
        rows.append(("vsr upscale (decode + model + encode)", s["frames"], s["seconds"] / s["frames"], cpu))
        rows.append(("vsr evaluate (the clip as HR: model at its size)", *_evaluate(checkpoint, clip)))
        rows.append(("vsr evaluate (upscale's output as HR: x4 size)", *_evaluate(checkpoint, up)))
    out = pd.DataFrame(rows, columns=["what", "frames", "s/frame", "CPU s/frame"])
    out["frames/s"] = 1.0 / out["s/frame"]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, required=True, help="the LR video (upscale's input)")
    ap.add_argument("--checkpoint", type=Path, required=True, help="a final.pt")
    ap.add_argument("--frames", type=int, default=24, help="frames timed per row")
    ap.add_argument("--reference", type=int, default=1, help="frames for the reference row (0: skip it)")
    a = ap.parse_args(argv)
    with av.open(str(a.video)) as c:
        s = c.streams.video[0]
        size = f"{s.width}x{s.height} -> {4 * s.width}x{4 * s.height}"
    df = bench(a.video, a.checkpoint, a.frames, a.reference)
    threads = f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    print(f"{a.video.name} {size}; torch {torch.__version__}, {threads}")
    print(df.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
