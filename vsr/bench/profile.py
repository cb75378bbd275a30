"""Where the NVDEC decode path spends its time: `python -m vsr.bench.profile`.

P processes x T threads, each thread with its own long-lived SimpleDecoder and CUDA stream,
decode random windows for a fixed time; per window the stages are timed on the host:
`decode` (PyNvVideoCodec's get_batch_frames_by_index: demux, NVDEC decode, surface map and
its copy into the decoder's buffer), `wrap` (DLPack), `copy` (the frames into a batch buffer,
then the stream synchronised). NVML samples NVDEC and "GPU busy" (any kernel running) during
the timed span. `--op decode` stops after decoding, `--op gop` decodes a keyframe's whole
group plus N-1 frames once and counts every window that starts in it.

    python -m vsr.bench.profile --data data/540p --procs 7 --threads 1 --op copy --out p.csv
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

STAGES = ("decode", "wrap", "copy")


def _frames_of(idx, rng, op: str, n: int) -> tuple[list[int], int]:
    """The frame indices one request decodes and the windows it serves."""
    if op == "gop":
        k = int(rng.choice(idx.keyframes[:-1] or idx.keyframes))
        nxt = [f for f in idx.keyframes if f > k]
        end = min((nxt[0] if nxt else idx.frames) + n - 1, idx.frames)
        return list(range(k, end)), max(1, end - k - n + 1)
    s = int(rng.integers(0, idx.frames - n + 1))
    return list(range(s, s + n)), 1


def _thread(indexes, op, n, gpu, seed, ready, go, seconds, out):
    import PyNvVideoCodec as nvc

    torch.cuda.set_device(gpu)
    stream = torch.cuda.Stream()
    rng = np.random.default_rng(seed)
    dec = nvc.SimpleDecoder(
        indexes[0].path,
        gpu_id=gpu,
        cuda_stream=stream.cuda_stream,
        use_device_memory=True,
        output_color_type=nvc.OutputColorType.NATIVE,
    )
    ix0 = indexes[0]
    dst = torch.empty((64, ix0.height * ix0.width * 3 // 2), dtype=torch.uint8, device=gpu)
    path, t = ix0.path, dict.fromkeys(STAGES, 0.0)
    windows = frames = 0
    ready.put(1)
    go.wait()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        idx = indexes[int(rng.integers(len(indexes)))]
        if idx.path != path:
            dec.reconfigure_decoder(idx.path)
            path = idx.path
        want, served = _frames_of(idx, rng, op, n)
        t0 = time.perf_counter()
        with torch.cuda.stream(stream):
            got = dec.get_batch_frames_by_index(want)
            t1 = time.perf_counter()
            if op != "decode":
                views = [torch.from_dlpack(f).reshape(-1) for f in got]
                t2 = time.perf_counter()
                for i, v in enumerate(views):
                    dst[i].copy_(v)
            else:
                t2 = t1
        stream.synchronize()
        t3 = time.perf_counter()
        t["decode"] += t1 - t0
        t["wrap"] += t2 - t1
        t["copy"] += t3 - t2
        windows += served
        frames += len(want)
    out.append({"windows": windows, "frames": frames, **t})


def _process(indexes, op, n, gpu, threads, seed, ready, go, seconds, results):
    torch.set_num_threads(1)
    out: list[dict] = []
    ts = [
        threading.Thread(target=_thread, args=(indexes, op, n, gpu, seed * 100 + i, ready, go, seconds, out))
        for i in range(threads)
    ]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    results.put(out)


def _nvml_sampler(gpu: int, stop: threading.Event, samples: list):
    import pynvml

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(gpu)
    while not stop.wait(0.2):
        dec, _ = pynvml.nvmlDeviceGetDecoderUtilization(h)
        samples.append((dec, pynvml.nvmlDeviceGetUtilizationRates(h).gpu))


def run(indexes, procs: int, threads: int, op: str, n: int, seconds: float, gpu: int = 0) -> dict:
    """One measurement: procs x threads decoders for `seconds`; returns the table row."""
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    ps = [
        ctx.Process(target=_process, args=(indexes, op, n, gpu, threads, i, ready, go, seconds, results))
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    for _ in range(procs * threads):  # every decoder created
        ready.get(timeout=180)
    stop, samples = threading.Event(), []
    mon = threading.Thread(target=_nvml_sampler, args=(gpu, stop, samples), daemon=True)
    mon.start()
    go.set()
    rows = [r for _ in ps for r in results.get(timeout=seconds + 120)]
    stop.set()
    for p in ps:
        p.join()
    tot = {k: sum(r[k] for r in rows) for k in ("windows", "frames", *STAGES)}
    u = np.array(samples[2:-2] or samples or [(0, 0)], dtype=float)
    row = {"procs": procs, "threads": threads, "op": op, "frames_per_window": n}
    row["windows_per_s"] = round(tot["windows"] / seconds, 1)
    row["decoded_frames_per_s"] = round(tot["frames"] / seconds, 1)
    for k in STAGES:
        row[f"{k}_ms"] = round(tot[k] * 1e3 / max(tot["windows"], 1), 3)
    row["nvdec_pct_mean"], row["nvdec_pct_max"] = round(u[:, 0].mean(), 1), int(u[:, 0].max())
    row["gpu_busy_pct_mean"] = round(u[:, 1].mean(), 1)
    return row


def demux_ms(indexes, n: int, count: int = 200, seed: int = 0) -> float:
    """CPU cost of demuxing one random window (seek to its keyframe, read its packets), ms."""
    from vsr.media.io import open_video

    rng = np.random.default_rng(seed)
    conts = {ix.path: open_video(ix.path) for ix in indexes}
    t0 = time.perf_counter()
    for _ in range(count):
        ix = indexes[int(rng.integers(len(indexes)))]
        s = int(rng.integers(0, ix.frames - n + 1))
        c = conts[ix.path]
        st = c.streams.video[0]
        c.seek(ix.pts[ix.keyframe_before(s)], stream=st, backward=True, any_frame=False)
        last = ix.pts[s + n - 1]
        for p in c.demux(st):
            if p.pts is None or p.pts >= last:
                break
    ms = (time.perf_counter() - t0) * 1e3 / count
    for c in conts.values():
        c.close()
    return ms


def loader_profile(data: Path, processes: int, out: Path, batches: int = 40) -> None:
    """torch.profiler over `batches` of the nvvl loader (540p batch 7, 3 frames, fp16)."""
    from torch.profiler import ProfilerActivity, profile

    from vsr.data.nvvl import VideoDataset, VideoLoader
    from vsr.data.sampler import WindowSampler

    files = sorted((data / "scenes" / "train").glob("[!.]*.mp4"))
    ds = VideoDataset(files, 3, "cuda", "nvdec", data / ".index", processes=processes)
    loader = VideoLoader(ds, 7, WindowSampler(ds.lengths, 3, ds.frame_hw, None, True, 0), torch.float16)
    it = iter(loader)
    for _ in range(5):
        next(it)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(batches):
            next(it)
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    it.close()
    loader.close()
    ds.close()
    with open(out, "a") as f:
        rate = batches * 7 / wall
        f.write(f"\n## nvvl loader, processes={processes}: {rate:.1f} windows/s under the profiler\n")
        f.write(p.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60))
        f.write(p.key_averages().table(sort_by="cpu_time_total", row_limit=20, max_name_column_width=60))


def main(argv=None):
    from vsr.bench.loader import _emit
    from vsr.data.index import build_index

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="data/{res} (its scenes/train/*.mp4)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1], help="one measurement per value")
    ap.add_argument("--threads", type=int, default=1, help="decoder threads per process")
    ap.add_argument("--op", choices=["decode", "copy", "gop"], default="copy")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--demux", action="store_true", help="also time CPU demux per window")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--loader-profile", type=Path, default=None, help="write torch.profiler tables here")
    ap.add_argument("--loader-processes", type=int, default=0)
    a = ap.parse_args(argv)
    if a.loader_profile:
        return loader_profile(a.data, a.loader_processes, a.loader_profile)
    files = sorted((a.data / "scenes" / "train").glob("[!.]*.mp4"))
    indexes = [build_index(f, a.data / ".index") for f in files]
    if a.demux:
        print(f"demux ms per {a.frames}-frame window (PyAV, one core): {demux_ms(indexes, a.frames):.3f}")
    for p in a.procs:
        _emit(run(indexes, p, a.threads, a.op, a.frames, a.seconds), a.out)


if __name__ == "__main__":
    main()
