"""The nvvl loader's runs, its processes' lives and bench-loader's edges, on the CPU."""

import os
import signal
import sys
import textwrap
import time

import psutil
import pytest
import torch
from conftest import PY, ROOT, run

from vsr.data.nvdec import RunCache
from vsr.data.sampler import WindowSampler


def test_runs_keep_every_window_once_and_stay_in_their_block():
    lengths, run, block = [40, 30], 4, 3
    s = WindowSampler(lengths, 3, (540, 960), (256, 256), True, seed=2, run=run, block=block)
    for epoch in range(2):
        s.set_epoch(epoch)
        wins = list(s)
        assert sorted((w.file, w.start) for w in wins) == [
            (f, st) for f, n in enumerate(lengths) for st in range(n - 2)
        ]
        chunk = {}
        for i, w in enumerate(wins):
            first, last = s.run_span(w)
            assert first <= w.start <= last <= first + run - 1 and w.start // run * run == first
            chunk.setdefault((w.file, first), set()).add(i // (run * block))
        assert all(len(c) <= 2 for c in chunk.values())  # a run spans at most one block border
        assert sum(len(c) == 1 for c in chunk.values()) > len(chunk) // 2
    plain = WindowSampler(lengths, 3, (540, 960), (256, 256), True, seed=2, run=1)
    assert sorted((w.file, w.start) for w in plain) == sorted((w.file, w.start) for w in wins)


def test_run_cache_decodes_each_run_once():
    calls = []

    def decode(idx, first, count):
        calls.append((first, count))
        return torch.arange(first, first + count)[:, None].repeat(1, 2)

    class Idx:
        path = "a.mp4"

    cache = RunCache(decode, capacity=2)
    for start in (8, 9, 10, 11):
        assert cache.window(Idx, start, 3, (8, 11))[:, 0].tolist() == [start, start + 1, start + 2]
    assert calls == [(8, 6)]
    cache.window(Idx, 0, 3, (0, 3))
    cache.window(Idx, 4, 3, (4, 7))  # evicts run 8..11 (capacity 2)
    cache.window(Idx, 8, 3, (8, 11))
    assert calls == [(8, 6), (0, 6), (4, 6), (8, 6)]


def test_switch_interval_is_restored(clipdir):
    from vsr.data.nvvl import VideoDataset, VideoLoader

    mp4 = sorted((clipdir / "scenes" / "train").glob("*.mp4"))
    ds = VideoDataset(mp4, 3, "cpu", "cpu", cpu_threads=1)
    s = WindowSampler(ds.lengths, 3, ds.frame_hw, (64, 64), True, 0)
    before = sys.getswitchinterval()
    it = iter(VideoLoader(ds, 2, s))
    next(it)
    assert sys.getswitchinterval() < before
    it.close()
    assert sys.getswitchinterval() == before
    ds.close()


def _bench(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return run([PY, "-m", "vsr.cli", "bench-loader", *map(str, args)], env=env)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--batch", "0"], "--batch: must be >= 1, got 0"),
        (["--frames", "2"], "--frames: must be odd"),
        (["--warmup", "-1"], "--warmup: must be >= 0"),
        (["--crop", "32", "64"], "--crop: H and W must be >= 64"),
    ],
)
def test_bench_loader_refuses_bad_arguments_in_one_line(tmp_path, args, says):
    from vsr.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bench-loader", "--loader", "nvvl", "--data", str(tmp_path), *args])
    msg = str(e.value.code)
    assert msg.startswith("vsr bench-loader: ") and "\n" not in msg and says in msg


@pytest.mark.parametrize("loader", ["nvvl", "png"])
def test_bench_loader_ends_cleanly_with_no_warmup(clipdir, loader):
    """Decoder processes (nvvl) and DataLoader workers (png) end in order: no traceback, no
    warning; --warmup 0 times from the first batch."""
    extra = ["--backend", "cpu", "--processes", "2"] if loader == "nvvl" else ["--workers", "2"]
    r = _bench(
        "--loader", loader, "--data", clipdir, "--batch", "2", "--iters", "2", "--warmup", "0",
        "--crop", "128", "192", "--device", "cpu", *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"loader={loader}" in r.stdout
    for bad in ("Traceback", "Warning", "warning", "killed by signal", "leaked"):
        assert bad not in r.stderr, r.stderr[-2000:]


def test_decoder_workers_exit_when_the_trainer_is_killed(clipdir):
    code = f"""
        import sys, time, torch
        sys.path.insert(0, {str(ROOT)!r})
        from vsr.data.nvvl import VideoDataset, VideoLoader
        from vsr.data.sampler import WindowSampler
        mp4 = sorted(__import__("pathlib").Path({str(clipdir)!r}).glob("scenes/train/*.mp4"))
        ds = VideoDataset(mp4, 3, "cpu", "cpu", processes=2)
        loader = VideoLoader(ds, 2, WindowSampler(ds.lengths, 3, ds.frame_hw, (64, 64), True, 0))
        next(iter(loader))
        print("ready", flush=True)
        time.sleep(600)
    """
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([PY, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        children = psutil.Process(p.pid).children(recursive=True)
        assert len(children) >= 2  # the two decoder workers (+ multiprocessing's resource tracker)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c.pid for c in children if _alive(c)]
    finally:
        if p.poll() is None:
            p.kill()


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
