"""GPU-only checks of the nvdec backend (run on the lent H100; CI has no GPU)."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    pytest.importorskip("PyNvVideoCodec")
    from vsr.media.synth import render_frames
    from vsr.media.transcode import encode_frames, extract_frames

    d = tmp_path_factory.mktemp("gpu")
    frames = [f for _, f in render_frames(960, 540, 60, 1, 1.0, 3)]
    mp4 = d / "scenes" / "train" / "a.mp4"
    encode_frames(frames, mp4, 60, keyframe_interval=4)
    extract_frames(mp4, d / "frames" / "train" / "a")
    return d


def test_nvdec_matches_cpu_and_png(clip):
    from vsr.data.nvvl import VideoDataset, VideoLoader
    from vsr.data.png import PngLoader, PngSequenceDataset
    from vsr.data.sampler import WindowSampler

    mp4 = [clip / "scenes" / "train" / "a.mp4"]
    outs = {}
    for backend in ("nvdec", "cpu"):
        ds = VideoDataset(mp4, 5, "cuda", backend)
        s = WindowSampler(ds.lengths, 5, ds.frame_hw, (256, 320), True, seed=1)
        outs[backend] = torch.cat(list(VideoLoader(ds, 4, s, torch.float32))).cpu()
        ds.close()
    pds = PngSequenceDataset([clip / "frames" / "train" / "a"], 5)
    s = WindowSampler(pds.lengths, 5, pds.frame_hw, (256, 320), True, seed=1)
    outs["png"] = torch.cat(list(PngLoader(pds, 4, s, "cuda", torch.float32, 2))).cpu()
    for k in ("cpu", "png"):
        diff = (outs["nvdec"] - outs[k]).abs()
        assert diff.max().item() <= 1 / 255 + 1e-6, (k, diff.max().item())
        assert diff.mean().item() < 1e-3


def test_nvdec_windows_are_exact(clip):
    """Every window equals the same frames of a full sequential decode."""
    from vsr.data.index import build_index
    from vsr.data.nvdec import NvdecBackend
    from vsr.data.pyav import PyAVBackend

    idx = build_index(clip / "scenes" / "train" / "a.mp4")
    seq = PyAVBackend(1).read(idx, 0, idx.frames)
    nv = NvdecBackend(torch.device("cuda"), 2)
    H = idx.height
    for start in np.random.default_rng(0).integers(0, idx.frames - 7, 20):
        got = nv.frames(idx, int(start), 7)
        for t, f in enumerate(got):
            assert np.array_equal(f[:H].cpu().numpy(), seq[start + t][0])
