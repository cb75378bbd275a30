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

from vsr.bench.monitor import NvdecMon
from vsr.errors import ConfigError
from vsr.train.step import DTYPES
from vsr.train.sysmon import SysMon

DEFAULT_PROCESSES = 7  # nvdec decoder processes when --processes is not given (0: threads)


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


def check_args(a) -> None:
    """Refuse bad bench-loader arguments up front, one line each (ConfigError)."""
    low = {"batch": 1, "iters": 1, "warmup": 0, "workers": 0, "decoders": 1, "threads": 1, "prefetch": 0}
    for key, least in low.items():
        if getattr(a, key) < least:
            raise ConfigError(f"--{key}: must be >= {least}, got {getattr(a, key)}")
    if a.frames < 1 or a.frames % 2 == 0:
        raise ConfigError(f"--frames: must be odd and positive (a centre frame), got {a.frames}")
    if a.processes is not None and a.processes < 0:
        raise ConfigError(f"--processes: must be >= 0, got {a.processes}")
    if a.step_ms < 0:
        raise ConfigError(f"--step-ms: must be >= 0, got {a.step_ms}")
    if a.crop and min(a.crop) < 64:
        raise ConfigError(f"--crop: H and W must be >= 64, got {a.crop[0]} {a.crop[1]}")
    if not a.data.is_dir():
        raise ConfigError(f"--data: {a.data} is not a directory")


def _nvvl(a, files, device, dtype, crop):
    from vsr.data.nvvl import VideoDataset, VideoLoader, resolve_backend
    from vsr.data.sampler import WindowSampler

    backend = resolve_backend(a.backend, device)
    procs = a.processes if a.processes is not None else (DEFAULT_PROCESSES if backend == "nvdec" else 0)
    ds = VideoDataset(
        files,
        a.frames,
        device,
        backend,
        index_cache_dir=a.data / ".index",
        decoders=a.decoders,
        cpu_threads=a.threads,
        processes=procs,
    )
    sampler = WindowSampler(ds.lengths, a.frames, ds.frame_hw, crop, True, a.seed, run=a.run)
    loader = VideoLoader(ds, a.batch, sampler, dtype, a.prefetch)
    name = ds.backend_name + (f" x{procs} processes" if procs else "")
    return loader, sampler, ds, name + (", MPS" if a.mps else "")


def _build(a, device, dtype):
    """(loader, sampler, parts to close, backend description) for `a.loader`."""
    from vsr.data.sampler import WindowSampler

    files = _files(a.data, "png" if a.loader == "png" else "nvvl", a.split)
    crop = tuple(a.crop) if a.crop else None
    if a.loader == "nvvl":
        return _nvvl(a, files, device, dtype, crop)
    if a.loader == "png":
        from vsr.data.png import PngLoader, PngSequenceDataset

        ds = PngSequenceDataset(files, a.frames)
        sampler = WindowSampler(ds.lengths, a.frames, ds.frame_hw, crop, True, a.seed, run=a.run)
        return (
            PngLoader(ds, a.batch, sampler, device, dtype, a.workers),
            sampler,
            None,
            f"{a.workers} workers",
        )
    from vsr.data.index import build_index

    idx = [build_index(f, a.data / ".index") for f in files]
    hw = (idx[0].height, idx[0].width)
    sampler = WindowSampler([i.frames for i in idx], a.frames, hw, crop, True, a.seed, run=a.run)
    loader = _TorchcodecBatches(files, a.frames, sampler, a.batch, a.threads, device, dtype)
    return loader, sampler, None, f"torchcodec (exact seek, {a.threads} threads)"


def _measure(a, loader, sampler, device) -> tuple[float, list[float], dict]:
    """Wall time of `a.iters` batches after `a.warmup`, each batch's wait, monitor summary."""
    sync = torch.cuda.current_stream(device).synchronize if device.type == "cuda" else (lambda: None)
    gpu = (device.index or 0) if device.type == "cuda" else None
    waits, got, epoch, mon, t_start = [], 0, 0, None, 0.0
    it = iter(loader)
    while got < a.iters + a.warmup:
        if got == a.warmup and mon is None:
            mon, t_start = SysMon(0.2, gpu).start(), time.perf_counter()
        # ready = the consumer's stream may use it (the loader's work on later batches runs on)
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
        if got > a.warmup:
            waits.append(t1 - t0)
            if a.step_ms:  # emulate a training step that overlaps with prefetching
                time.sleep(a.step_ms / 1e3)
    wall = time.perf_counter() - t_start
    getattr(it, "close", lambda: None)()
    return wall, waits, mon.stop()


def bench_loader(a) -> dict:
    from vsr.data.mps import mps_daemon

    check_args(a)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with mps_daemon(a.mps), NvdecMon(device) as nvdec:
        t_build = time.perf_counter()
        loader, sampler, ds, backend = _build(a, device, DTYPES[a.dtype])
        t_build = time.perf_counter() - t_build
        try:
            nvdec.begin()
            wall, waits, s = _measure(a, loader, sampler, device)
            nv = nvdec.end()
        finally:
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
        "run": a.run,
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
        **nv,
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
    starts, moved between files with reconfigure_decoder, as the loader does); asks for
    exactly the frames each file has (asking past the end makes PyNvVideoCodec warn)."""
    import PyNvVideoCodec as nvc

    dec = nvc.SimpleDecoder(
        str(files[0]), gpu_id=gpu, use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE
    )
    n, t0 = 0, time.perf_counter()
    for i, f in enumerate(files):
        if i:
            dec.reconfigure_decoder(str(f))
        left = len(dec)
        while left > 0:
            got = len(dec.get_batch_frames(min(batch, left)))
            if not got:
                break
            n, left = n + got, left - got
    return n, time.perf_counter() - t0


def nvdec_ceiling(a) -> dict:
    """Sequential decode of all files by `decoders` processes in parallel (one session each)."""
    import multiprocessing as mp

    from vsr.data.mps import mps_daemon

    if a.decoders < 1 or a.repeat < 1:
        raise ConfigError(f"--decoders and --repeat must be >= 1, got {a.decoders}, {a.repeat}")
    files = _files(a.data, "nvvl", a.split)
    # every process decodes every file (each from a different one on), `repeat` times
    work = [
        ((files[i % len(files) :] + files[: i % len(files)]) * a.repeat, 0, 64) for i in range(a.decoders)
    ]
    with mps_daemon(a.mps), NvdecMon(torch.device("cuda")) as mon:
        with ProcessPoolExecutor(a.decoders, mp_context=mp.get_context("spawn")) as ex:
            list(ex.map(_sequential_decode, [(files[:1], 0, 64)] * a.decoders))  # CUDA contexts up
            mon.begin()
            t0 = time.perf_counter()
            res = list(ex.map(_sequential_decode, work))
            wall = time.perf_counter() - t0
            nv = mon.end()
    n = sum(r[0] for r in res)
    row = {
        "loader": "nvdec-ceiling",
        "res": a.data.name,
        "decoders": a.decoders,
        "mps": a.mps,
        "frames": n,
        "frames_per_s": round(n / max(r[1] for r in res), 1),
        "frames_per_s_wall": round(n / wall, 1),
        **nv,
        "device": _device_name(torch.device("cuda")),
    }
    _emit(row, a.out)
    return row
