"""The report from real (tiny) training runs: atomic table with a smoke-run note, PSNR curves
over training with bicubic references, and the 4-panel side-by-side sample."""

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import PY, ROOT, run
from tiny import make_clip

from vsr.infer.sample import GAP, HEADER, sample_image
from vsr.report import aggregate, plot

CFG = {
    "loader": "nvvl",
    "precision": "fp32",
    "batch": 2,
    "crop": [64, 128],
    "iterations": 4,
    "val_every": 2,
    "checkpoint_every": 4,
    "val_stride": 4,
    "warmup_iters": 1,
    "model": {"features": [8, 4]},
    "flownet": {"mode": "none", "width": 0.0625},
    "nvvl": {"backend": "cpu", "cpu_threads": 1, "prefetch": 1},
    "png_workers": 0,
}
STUDY = [{"res": "540p", "crop": None, "batch": 2}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real 4-iteration runs (nvvl fp32, nvvl bf16) on a 2-scene 256x192 clip set."""
    d = tmp_path_factory.mktemp("report")
    for i, split in enumerate(("train", "val")):
        make_clip(d / f"data/540p/scenes/{split}/scene_{i:03d}.mp4", 256, 192, frames=12, fps=60)
    paths = []
    for prec in ("fp32", "bf16"):
        out = d / f"runs/540p/nvvl_{prec}"
        cfg = json.dumps({**CFG, "precision": prec})
        r = run([PY, "-m", "vsr.train", "--cfg", cfg, "--data", str(d / "data/540p"), "--out", str(out)])
        assert r.returncode == 0, r.stderr[-2000:]
        paths.append(str(out / "metrics.jsonl"))
    return d, paths


def outputs(d):
    names = {"table": "table.md", "csv": "benchmark.csv", "psnr": "psnr.png", "loss": "train_loss.png"}
    return SimpleNamespace(**{k: str(d / "results" / v) for k, v in names.items()})


def test_psnr_plot_is_a_curve_per_run_with_bicubic_per_resolution(runs):
    d, paths = runs
    out = outputs(d)
    (d / "results").mkdir(exist_ok=True)
    shown = plot(paths, out.psnr, out.loss)
    assert set(shown["runs"]) == {"540p nvvl fp32", "540p nvvl bf16"}
    for iters, psnr in shown["runs"].values():
        assert iters == [2, 4] and all(5 < p < 60 for p in psnr)  # validated twice: a curve
    val = [json.loads(x) for p in paths for x in open(p) if '"val"' in x]
    bic = next(k for k in val[0] if k.startswith("bicubic/psnr"))  # mean over the runs' val records
    assert shown["bicubic"]["540p"] == pytest.approx(np.mean([v[bic] for v in val]))
    for name in ("psnr.png", "train_loss.png"):
        assert cv2.imread(str(d / "results" / name)) is not None


def test_table_says_smoke_run_and_writes_atomically(runs, tmp_path):
    d, paths = runs
    out = outputs(tmp_path)
    df = aggregate(paths, STUDY, 0, out, data_root=d / "data")
    text = open(out.table).read()
    assert (
        text.startswith("# VSRNet loader benchmark") and "**Smoke run**: 2 of 2 runs trained only 4" in text
    )
    assert text.splitlines()[4].startswith("| Data loader")  # the note stays in the header paragraph
    assert len(pd.read_csv(out.csv)) == 2 and df["smoke"].all()
    before = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
    bad = tmp_path / "runs/540p/png_fp32"
    bad.mkdir(parents=True)
    (bad / "metrics.jsonl").write_text('{"kind": "train", "iter": 1}\n{"kind": "va')  # half-written
    (bad / "sysmon.json").write_text("{}")
    with pytest.raises(json.JSONDecodeError):
        aggregate([*paths, str(bad / "metrics.jsonl")], STUDY, 0, out, data_root=d / "data")
    after = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
    assert after == before  # no 0-byte or half-written table/CSV, no temporary files left


def test_sample_has_four_panels(runs, tmp_path):
    d, _ = runs
    video = d / "data/540p/scenes/val/scene_001.mp4"
    s = sample_image(d / "runs/540p/nvvl_fp32/final.pt", video, tmp_path / "sample.png", size=128)
    img = cv2.imread(str(tmp_path / "sample.png"))[..., ::-1]
    assert s["frame"] == 6 and [p[0].split()[0] for p in s["panels"]] == ["LR", "bicubic", "VSRNet", "ground"]
    h, w = s["panels"][0][1].shape[:2]
    assert (h, w) == (128, 128) and img.shape == (HEADER + h, 4 * w + 3 * GAP, 3)
    for i, (_, panel) in enumerate(s["panels"]):
        assert np.array_equal(img[HEADER:, i * (w + GAP) : i * (w + GAP) + w], panel)
    assert (img[HEADER:, w : w + GAP] == 255).all()  # white gaps between the panels
    lr, bic, _, gt = (p[1].astype(float) for p in s["panels"])
    assert np.abs(bic - gt).mean() < np.abs(lr - gt).mean()  # bicubic beats pixel repetition
    assert 5 < s["psnr"]["VSRNet"] < 60 and 15 < s["psnr"]["bicubic"] < 60


def test_table_names_the_commit_from_vsr_commit_when_set(monkeypatch):
    """On a copy whose git metadata is stale (the lent GPU machine) the caller names the commit."""
    import subprocess

    from vsr.report import _commit

    monkeypatch.delenv("VSR_COMMIT", raising=False)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    assert _commit() == (head.stdout.strip() if head.returncode == 0 else "unknown")
    monkeypatch.setenv("VSR_COMMIT", "abc1234")
    assert _commit() == "abc1234"
