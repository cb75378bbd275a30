import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import PY, ROOT, run

from vsr.report import _timing
from vsr.runs import read_run

CFG = {
    "loader": "nvvl",
    "precision": "fp32",
    "batch": 2,
    "crop": [64, 128],
    "iterations": 6,
    "val_every": 3,
    "checkpoint_every": 2,
    "val_stride": 8,
    "warmup_iters": 1,
    "model": {"features": [4, 2]},
    "flownet": {"mode": "finetune", "width": 0.0625},
    "nvvl": {"backend": "cpu", "cpu_threads": 1, "prefetch": 1},
    "png_workers": 0,
}


def train(cfg, data, out, **kw):
    """`python -m vsr.train` as the Snakemake rule runs it, one process."""
    cmd = [PY, "-m", "vsr.train", "--cfg", json.dumps(cfg), "--data", str(data), "--out", str(out)]
    return run(cmd, **kw)


def _lines(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_ddp_two_processes_gloo(clipdir, tmp_path):
    out = tmp_path / "ddp"
    r = run(
        [
            PY,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "vsr.train",
            "--cfg",
            json.dumps(CFG),
            "--data",
            str(clipdir),
            "--out",
            str(out),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = _lines(out)
    assert [x["iter"] for x in lines if x["kind"] == "train"] == list(range(1, 7))
    val = [x for x in lines if x["kind"] == "val"][-1]
    assert val["count"] == len(range(0, 13, 8))  # every val window once over both ranks
    assert val["clips"] == 1  # per-clip means, then the mean over clips (one val scene here)
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in lines if x["kind"] == "train")
    assert json.loads((out / "sysmon.json").read_text())["world_size"] == 2


def test_resume_after_sigkill_matches_an_uninterrupted_run(clipdir, tmp_path):
    out, ref = tmp_path / "res", tmp_path / "ref"
    cfg = dict(CFG, iterations=8, loader="png")
    cmd = [PY, "-m", "vsr.train", "--cfg", json.dumps(cfg), "--data", str(clipdir), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "train_state.pt"
    t0 = time.time()
    while time.time() - t0 < 300:
        if state.exists() and torch.load(state, weights_only=True)["iter"] >= 4:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = torch.load(state, weights_only=True)["iter"]
    assert 4 <= done < 8 and not (out / "metrics.jsonl").exists()
    r = run(cmd, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"continuing from {state} at iteration {done}" in r.stderr
    assert train(cfg, clipdir, ref, timeout=600).returncode == 0  # the same run, never stopped
    resumed, whole = _lines(out), _lines(ref)
    its = [x["iter"] for x in resumed if x["kind"] == "train"]
    assert its == list(range(1, 9))  # the curve continues, no gap, no repeat
    loss = {x["iter"]: x["loss"] for x in resumed if x["kind"] == "train"}
    assert loss == {x["iter"]: x["loss"] for x in whole if x["kind"] == "train"}  # bit-equal on CPU
    a, b = (torch.load(d / "final.pt", weights_only=True)["model"] for d in (out, ref))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the table's time columns cover the iterations its speed does: after the continuation
    mon = json.loads((out / "sysmon.json").read_text())
    assert mon["steady_iters"] == [done + 1, 8]
    after = [x["compute_ms"] for x in resumed if x["kind"] == "train" and x["iter"] > done + 1]
    assert _timing(read_run(out / "metrics.jsonl"))["Compute (ms/it)"] == pytest.approx(np.mean(after))


def test_bad_data_dir_is_one_line(tmp_path):
    r = run(
        [
            PY,
            "-m",
            "vsr.train",
            "--cfg",
            json.dumps(CFG),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        timeout=120,
    )
    assert r.returncode != 0
    assert f"{tmp_path}: no train scene .mp4" in r.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def one_sequence(tmp_path_factory):
    """One 3-frame 192x128 sequence, as the only train scene and the only val scene."""
    from vsr.media.synth import render_frames
    from vsr.media.transcode import encode_frames

    d = tmp_path_factory.mktemp("one")
    frames = [f for _, f in render_frames(192, 128, 60, 1, 0.1, 3)][:3]
    for split in ("train", "val"):
        encode_frames(frames, d / "scenes" / split / "scene_000.mp4", 60, keyframe_interval=4)
    return d


def test_overfit_one_sequence_beats_bicubic(one_sequence, tmp_path):
    cfg = dict(
        CFG,
        batch=1,
        crop=None,
        iterations=400,
        val_every=400,
        checkpoint_every=400,
        val_stride=1,
        lr_min=3e-3,
        lr_max=3e-3,
        weight_decay=0.0,
        log_images_every=1000,
        model={"features": [32, 16]},
        flownet={"mode": "none"},
    )
    r = train(cfg, one_sequence, tmp_path / "o", env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    val = [x for x in _lines(tmp_path / "o") if x["kind"] == "val"][-1]
    assert val["count"] == 1
    assert val["model/psnr-Y-box4x-crop4"] > val["bicubic/psnr-Y-box4x-crop4"] + 0.2, val
    assert val["psnr_gain_over_bicubic"] > 0.2


def test_nan_loss_stops_with_a_clear_message(one_sequence, tmp_path):
    cfg = dict(CFG, batch=1, crop=None, iterations=4, lr_min=1e30, lr_max=1e30)
    r = train(cfg, one_sequence, tmp_path / "o", timeout=300)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "loss is nan at iteration 2 (fp32): stopping" in last, r.stderr[-2000:]
    assert not (tmp_path / "o" / "metrics.jsonl").exists()  # no final output left behind


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_runs_have_finite_losses(one_sequence, tmp_path, precision):
    cfg = dict(CFG, batch=1, crop=None, iterations=3, val_every=3, precision=precision)
    r = train(cfg, one_sequence, tmp_path / "o", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = _lines(tmp_path / "o")
    losses = [x["loss"] for x in lines if x["kind"] == "train"]
    assert len(losses) == 3 and all(0 < v < 1 for v in losses)
    val = [x for x in lines if x["kind"] == "val"][-1]
    assert 5 < val["model/psnr-Y-box4x-crop4"] < 60


@pytest.fixture(scope="module")
def two_val_clips(tmp_path_factory):
    """Two different val scenes (9 and 15 frames, 256x128): data folders with each alone and both."""
    from vsr.media.synth import render_frames
    from vsr.media.transcode import encode_frames

    d = tmp_path_factory.mktemp("twoval")
    for i, (seed, n) in enumerate(((3, 9), (11, 15))):
        frames = [f for _, f in render_frames(256, 128, 60, 1, 0.3, seed)][:n]
        for where in (f"only{i}", "both"):
            mp4 = d / where / "scenes" / "val" / f"scene_{i:03d}.mp4"
            encode_frames(frames, mp4, 60, keyframe_interval=4)
    return d


def test_validation_over_two_clips_is_the_mean_of_per_clip_means(two_val_clips):
    """Each clip counts once, whatever its number of windows (4 and 7 here): the score over both
    clips is the mean of each clip validated alone, not the mean over all windows."""
    from vsr.models.vsrnet import build_vsrnet
    from vsr.train.config import merged
    from vsr.train.setup import make_loader
    from vsr.train.step import autocast_for
    from vsr.train.validate import validate

    cfg = merged(dict(CFG, val_stride=2, flownet={"mode": "none"}))
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    net = build_vsrnet(cfg)
    got = {}
    for where in ("only0", "only1", "both"):
        loader = make_loader(cfg, two_val_clips / where, "val", 0, 1, cpu, False)
        got[where] = validate(net, loader, cfg, cpu, 1, autocast_for(cfg, cpu))
    both, one, two = got["both"], got["only0"], got["only1"]
    assert (both["clips"], one["clips"], two["clips"]) == (2, 1, 1)
    assert (one["count"], two["count"], both["count"]) == (4, 7, 11)
    for key in ("model/psnr-Y-box4x-crop4", "bicubic/ssim-Y-box4x-crop4", "psnr_gain_over_bicubic"):
        assert both[key] == pytest.approx((one[key] + two[key]) / 2, abs=1e-9), key
    assert one[key] != pytest.approx(two[key])  # two different clips, not one clip twice
    assert both["per_clip_psnr_gain"] == [one["per_clip_psnr_gain"][0], two["per_clip_psnr_gain"][0]]


def test_an_unwritable_out_folder_is_one_line(clipdir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # --out under a regular file: no folder can be made there
    cfg = dict(CFG, iterations=1)
    cmd = [PY, "-m", "vsr.train", "--cfg", json.dumps(cfg), "--data", str(clipdir)]
    r = run(cmd + ["--out", str(blocker / "run")], timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("[vsr.train] error:") and str(blocker / "run") in lines[0]
