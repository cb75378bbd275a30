"""`vsr` command line: loader benchmark, NVDEC ceiling, data preparation without ffmpeg."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from vsr.sysmon import SysMon

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _files(data: Path, loader: str, split: str) -> list[Path]:
    from vsr.train import list_inputs

    return list_inputs(data, loader, split)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()} x{os.cpu_count()}"


class _TorchcodecBatches:
    """Peer baseline for the cpu backend: the sampler's windows decoded by torchcodec's
    exact-seek CPU decoder (its own RGB conversion), `threads` windows at a time, one cached
    decoder per file and thread; no prefetching (torchcodec has no loader)."""

    def __init__(self, files, n, sampler, batch, threads, device, dtype):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.files, self.n, self.sampler, self.batch = [str(f) for f in files], n, sampler, batch
        self.device, self.dtype = device, dtype
        self.pool, self.local = ThreadPoolExecutor(threads), threading.local()

    def _window(self, win):
        from torchcodec.decoders import VideoDecoder

        cache = self.local.__dict__.setdefault("decoders", {})
        if win.file not in cache:
            cache[win.file] = VideoDecoder(self.files[win.file], seek_mode="exact", device="cpu")
        h, w = self.sampler.crop
        frames = cache[win.file].get_frames_in_range(win.start, win.start + self.n).data
        return frames[:, :, win.y0 : win.y0 + h, win.x0 : win.x0 + w]

    def __iter__(self):
        for b in self.sampler.batches(self.batch, True):
            x = torch.stack(list(self.pool.map(self._window, b)))
            yield x.to(self.device, non_blocking=True).float().div_(255.0).to(self.dtype)


def bench_loader(a) -> dict:
    from vsr.data.sampler import WindowSampler

    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = DTYPES[a.dtype]
    files = _files(a.data, "png" if a.loader == "png" else "nvvl", a.split)
    crop = tuple(a.crop) if a.crop else None
    t_build = time.perf_counter()
    if a.loader == "nvvl":
        from vsr.data.nvvl import VideoDataset, VideoLoader

        ds = VideoDataset(
            files,
            a.frames,
            device,
            a.backend,
            index_cache_dir=a.data / ".index",
            decoders=a.decoders,
            cpu_threads=a.threads,
        )
        sampler = WindowSampler(ds.lengths, a.frames, ds.frame_hw, crop, True, a.seed)
        loader = VideoLoader(ds, a.batch, sampler, dtype, a.prefetch)
        backend = ds.backend_name
    elif a.loader == "png":
        from vsr.data.png import PngLoader, PngSequenceDataset

        ds = PngSequenceDataset(files, a.frames)
        sampler = WindowSampler(ds.lengths, a.frames, ds.frame_hw, crop, True, a.seed)
        loader = PngLoader(ds, a.batch, sampler, device, dtype, a.workers)
        backend = f"{a.workers} workers"
    elif a.loader == "torchcodec":
        from vsr.data.index import build_index

        lengths = [build_index(f, a.data / ".index").frames for f in files]
        first = build_index(files[0], a.data / ".index")
        sampler = WindowSampler(lengths, a.frames, (first.height, first.width), crop, True, a.seed)
        loader = _TorchcodecBatches(files, a.frames, sampler, a.batch, a.threads, device, dtype)
        backend, ds = f"torchcodec (exact seek, {a.threads} threads)", None
    else:
        raise SystemExit(f"unknown loader {a.loader}")
    t_build = time.perf_counter() - t_build
    waits, got, epoch = [], 0, 0
    mon = None
    it = iter(loader)
    t_start = None
    while got < a.iters + a.warmup:
        # the batch is ready when the consumer's stream may use it (the loader's stream work on
        # later batches keeps running: that is what prefetching is for)
        sync = torch.cuda.current_stream(device).synchronize if device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        x = next(it, None)
        sync()
        t1 = time.perf_counter()
        if x is None:
            epoch += 1
            sampler.set_epoch(epoch)
            it = iter(loader)
            continue
        got += 1
        if got == a.warmup:
            mon = SysMon(0.2, device.index or 0 if device.type == "cuda" else None).start()
            t_start = time.perf_counter()
        elif got > a.warmup:
            waits.append(t1 - t0)
            if a.step_ms:  # emulate a training step that overlaps with prefetching
                time.sleep(a.step_ms / 1e3)
    wall = time.perf_counter() - t_start
    s = mon.stop()
    if ds is not None and hasattr(ds, "close"):
        ds.close()
    w = np.array(waits) * 1e3
    seq = a.iters * a.batch / wall
    row = {
        "loader": a.loader,
        "backend": backend,
        "res": a.data.name,
        "batch": a.batch,
        "frames": a.frames,
        "crop": "x".join(map(str, sampler.crop)),
        "dtype": a.dtype,
        "iters": a.iters,
        "step_ms": a.step_ms,
        "sequences_per_s": round(seq, 1),
        "frames_per_s": round(seq * a.frames, 1),
        "wait_ms_mean": round(w.mean(), 3),
        "wait_ms_p95": round(float(np.percentile(w, 95)), 3),
        "cpu_percent": round(s.get("cpu_percent_mean", float("nan")), 1),
        "load1": round(s.get("load1_mean", float("nan")), 2),
        "peak_rss_gb": round(s.get("peak_mem_gb", float("nan")), 2),
        "gpu_util": round(s.get("gpu_util_mean", float("nan")), 1),
        "build_s": round(t_build, 2),
        "device": _device_name(device),
    }
    _emit(row, a.out)
    return row


def _emit(row: dict, out: Path | None) -> None:
    print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if out:
        new = not out.exists()
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


def _sequential_decode(args) -> tuple[int, float]:
    files, gpu, batch = args

    try:
        return _decode_all(files, gpu, batch)
    except Exception as e:  # PyNvVideoCodec's exceptions do not unpickle in the parent
        raise RuntimeError(f"{type(e).__name__}: {e}") from None


def _decode_all(files, gpu, batch) -> tuple[int, float]:
    """Decode `files` start to end with one long-lived session (created before the clock
    starts, moved between files with reconfigure_decoder, as the loader does)."""
    import PyNvVideoCodec as nvc

    dec = nvc.SimpleDecoder(
        str(files[0]), gpu_id=gpu, use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE
    )
    n, t0 = 0, time.perf_counter()
    for i, f in enumerate(files):
        if i:
            dec.reconfigure_decoder(str(f))
        while True:
            frames = dec.get_batch_frames(batch)
            if not frames:
                break
            n += len(frames)
    return n, time.perf_counter() - t0


def nvdec_ceiling(a) -> dict:
    """Sequential decode of all files by `decoders` processes in parallel (one session each)."""
    files = _files(a.data, "nvvl", a.split)
    # every process decodes every file (each from a different one on), `repeat` times
    work = [
        ((files[i % len(files) :] + files[: i % len(files)]) * a.repeat, 0, 64) for i in range(a.decoders)
    ]
    import multiprocessing as mp

    with ProcessPoolExecutor(a.decoders, mp_context=mp.get_context("spawn")) as ex:
        ex.map(_sequential_decode, [(files[:1], 0, 64)] * a.decoders)  # warm up CUDA contexts
        t0 = time.perf_counter()
        res = list(ex.map(_sequential_decode, work))
        wall = time.perf_counter() - t0
    n = sum(r[0] for r in res)
    row = {
        "loader": "nvdec-ceiling",
        "res": a.data.name,
        "decoders": a.decoders,
        "frames": n,
        "frames_per_s": round(n / max(r[1] for r in res), 1),
        "frames_per_s_wall": round(n / wall, 1),
        "device": _device_name(torch.device("cuda")),
    }
    _emit(row, a.out)
    return row


def _prepare_scene(args):
    from vsr.media.scenes import assign_split
    from vsr.media.synth import render_frames
    from vsr.media.transcode import RESOLUTIONS, encode_frames, extract_frames

    i, out, res_list, w, h, fps, seconds, seed, val_every, gop = args
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    frames = [f for s, f in render_frames(w, h, fps, i + 1, seconds, seed) if s == i]
    split = assign_split(i, val_every)
    for res in res_list:
        rw, rh = RESOLUTIONS[res]
        scaled = [cv2.resize(f, (rw, rh), interpolation=cv2.INTER_AREA) for f in frames]
        mp4 = Path(out) / res / "scenes" / split / f"scene_{i:03d}.mp4"
        encode_frames(scaled, mp4, fps, keyframe_interval=gop)
        extract_frames(mp4, Path(out) / res / "frames" / split / f"scene_{i:03d}")
    return i, len(frames)


def prepare(a) -> None:
    """Synthetic scenes encoded per resolution with PyAV (no ffmpeg binary needed)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    w, h = a.render
    jobs = [
        (i, str(a.out), a.res, w, h, a.fps, a.seconds, a.seed, a.val_every, a.gop) for i in range(a.scenes)
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as ex:
        for i, n in ex.map(_prepare_scene, jobs):
            print(f"scene {i}: {n} frames", flush=True)
    print(json.dumps({"prepared_s": round(time.perf_counter() - t0, 1)}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="vsr", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench-loader", help="time a loader alone (no model)")
    b.add_argument("--loader", choices=["nvvl", "png", "torchcodec"], required=True)
    b.add_argument("--backend", default="auto", choices=["auto", "nvdec", "cpu"])
    b.add_argument("--data", type=Path, required=True, help="data/{res}")
    b.add_argument("--split", default="train")
    b.add_argument("--batch", type=int, default=7)
    b.add_argument("--frames", type=int, default=3)
    b.add_argument("--crop", type=int, nargs=2, default=None)
    b.add_argument("--dtype", choices=list(DTYPES), default="fp16")
    b.add_argument("--iters", type=int, default=100)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--workers", type=int, default=10, help="png DataLoader workers")
    b.add_argument("--decoders", type=int, default=7, help="nvdec decoders per GPU")
    b.add_argument("--threads", type=int, default=8, help="cpu backend decode threads")
    b.add_argument("--prefetch", type=int, default=2)
    b.add_argument("--step-ms", type=float, default=0.0, help="simulated compute per batch")
    b.add_argument("--device", default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, default=None, help="append a CSV row here")
    c = sub.add_parser("nvdec-ceiling", help="all NVDEC engines decoding sequentially")
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--split", default="train")
    c.add_argument("--decoders", type=int, default=7)
    c.add_argument("--repeat", type=int, default=4, help="decode the files this many times")
    c.add_argument("--out", type=Path, default=None)
    p = sub.add_parser("prepare", help="synthetic data per resolution with PyAV only")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--res", nargs="+", default=["540p", "720p"])
    p.add_argument("--render", type=int, nargs=2, default=[1920, 1080])
    p.add_argument("--fps", type=int, default=60)
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=4)
    p.add_argument("--gop", type=int, default=4)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    a = ap.parse_args(argv)
    {"bench-loader": bench_loader, "nvdec-ceiling": nvdec_ceiling, "prepare": prepare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
