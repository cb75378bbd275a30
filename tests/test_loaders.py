import numpy as np
import pytest
import torch

from vsr.data.index import build_index
from vsr.data.nvvl import VideoDataset, VideoLoader
from vsr.data.png import PngLoader, PngSequenceDataset
from vsr.data.pyav import PyAVBackend
from vsr.data.sampler import WindowSampler
from vsr.media.io import MediaError


def _loaders(d, n=3, crop=(256, 320), batch=4, seed=0, dtype=torch.float32):
    mp4 = sorted((d / "scenes" / "train").glob("*.mp4"))
    ds = VideoDataset(mp4, n, "cpu", "cpu")
    s1 = WindowSampler(ds.lengths, n, ds.frame_hw, crop, True, seed)
    pds = PngSequenceDataset(sorted((d / "frames" / "train").iterdir()), n)
    s2 = WindowSampler(pds.lengths, n, pds.frame_hw, crop, True, seed)
    return VideoLoader(ds, batch, s1, dtype), PngLoader(pds, batch, s2, "cpu", dtype, workers=1)


@pytest.mark.parametrize("n", [3, 5])
def test_nvvl_and_png_return_the_same_pixels(clipdir, n):
    a, b = _loaders(clipdir, n)
    xa, xb = torch.cat(list(a)), torch.cat(list(b))
    assert xa.shape == xb.shape and xa.shape[1:] == (n, 3, 256, 320)
    assert (xa - xb).abs().max().item() <= 1 / 255 + 1e-6
    # samples of a batch are distinct (the example's PNG dataset returned one reused buffer)
    assert not torch.equal(xa[0], xa[1]) and not torch.equal(xb[0], xb[1])


def test_windows_are_exact_frames(clipdir):
    idx = build_index(clipdir / "scenes" / "train" / "scene_000.mp4")
    seq = PyAVBackend(1).read(idx, 0, idx.frames)
    be = PyAVBackend(1)
    for start in [0, 1, 3, 4, 7, idx.frames - 5]:
        got = be.read(idx, start, 5)
        for t in range(5):
            assert all(np.array_equal(g, s) for g, s in zip(got[t], seq[start + t]))


def test_dtype_and_range(clipdir):
    a, _ = _loaders(clipdir, dtype=torch.float16)
    x = next(iter(a))
    assert x.dtype == torch.float16 and 0.0 <= x.min() and x.max() <= 1.0


def test_sampler_epochs_shards_and_crops():
    lengths = [40, 30]
    s = [WindowSampler(lengths, 3, (540, 960), (256, 256), True, seed=1, rank=r, world=2) for r in range(2)]
    e0 = [list(x) for x in s]
    a, b = {(w.file, w.start) for w in e0[0]}, {(w.file, w.start) for w in e0[1]}
    assert len(a & b) <= 1  # disjoint except DistributedSampler-style padding
    assert len(a | b) == 38 + 28
    for x in s:
        x.set_epoch(1)
    assert [(w.file, w.start) for w in s[0]] != [(w.file, w.start) for w in e0[0]]
    ys = np.array([w.y0 for w in e0[0]] + [w.y0 for w in e0[1]])
    xs = np.array([w.x0 for w in e0[0]] + [w.x0 for w in e0[1]])
    assert (ys % 2 == 0).all() and ys.max() <= 540 - 256 and xs.max() <= 960 - 256
    assert len(set(ys)) > 20 and abs(xs.mean() - (960 - 256) / 2) < 80  # spread, uniform-ish
    v = WindowSampler(lengths, 7, (540, 960), None, False, rank=0, world=3)
    assert v.crop == (512, 960)  # 540p floored to a multiple of 64


def test_bad_files_fail_at_build(clipdir, tmp_path):
    good = clipdir / "scenes" / "train" / "scene_000.mp4"
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    for bad in (trunc, junk, tmp_path / "missing.mp4"):
        with pytest.raises(MediaError) as e:
            VideoDataset([bad], 3, "cpu", "cpu")
        assert str(bad) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MediaError, match="shorter than a sequence"):
        VideoDataset([good], 99, "cpu", "cpu")


def test_decoder_processes_return_the_thread_loaders_pixels(clipdir):
    """nvvl.processes > 0: windows decoded in spawned workers into a shared ring, converted in
    the consumer: the same tensors as the in-process loader, over more batches than ring slots."""
    mp4 = sorted((clipdir / "scenes" / "train").glob("*.mp4"))
    threads = VideoDataset(mp4, 3, "cpu", "cpu")
    procs = VideoDataset(mp4, 3, "cpu", "cpu", processes=2)
    s1 = WindowSampler(threads.lengths, 3, threads.frame_hw, (128, 192), True, 0)
    s2 = WindowSampler(procs.lengths, 3, procs.frame_hw, (128, 192), True, 0)
    a, b = VideoLoader(threads, 3, s1, torch.float32), VideoLoader(procs, 3, s2, torch.float32, prefetch=1)
    try:
        xa, xb = list(a), list(b)
        assert len(xb) == len(xa) > 2 * (b.prefetch + 2)  # every ring slot reused
        assert all(torch.equal(p, q) for p, q in zip(xa, xb))
        it = iter(b)  # an epoch abandoned mid-way, then a full one: nothing stale comes back
        next(it)
        it.close()
        assert all(torch.equal(p, q) for p, q in zip(xa, list(b)))
    finally:
        b.close()
        threads.close()
