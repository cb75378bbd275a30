"""Loader benchmarks: `vsr bench-loader` (one loader alone, no model) and `vsr nvdec-ceiling`
(every NVDEC engine decoding sequentially); one CSV row per measurement."""

from __future__ import annotations

import csv
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from vsr.train.step import DTYPES
from vsr.train.sysmon import SysMon


def _files(data: Path, loader: str, split: str) -> list[Path]:
    from vsr.train.setup import list_inputs

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
            processes=a.processes,
        )
        sampler = WindowSampler(ds.lengths, a.frames, ds.frame_hw, crop, True, a.seed)
        loader = VideoLoader(ds, a.batch, sampler, dtype, a.prefetch)
        backend = ds.backend_name + (f" x{a.processes} processes" if a.processes else "")
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
    for part in (loader, ds):
        if part is not None and hasattr(part, "close"):
            part.close()
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
