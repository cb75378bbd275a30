"""`vsr evaluate` on a tiny real clip with tiny checkpoints in final.pt format."""

import json

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import PY, run
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tiny import make_checkpoint, make_clip

from vsr.cli import main
from vsr.infer.checkpoint import centred_windows
from vsr.infer.evaluate import PSNR_COL, SSIM_COL
from vsr.media.color import yuv420_to_rgb
from vsr.media.transcode import decoded_planes


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    make_clip(d / "a.mp4", 160, 120, frames=5)
    make_clip(d / "b.mp4", 128, 96, frames=4)
    return d, make_checkpoint(d / "noflow.pt"), make_checkpoint(d / "flow.pt", flow="finetune", seed=1)


def bicubic_independently(mp4) -> tuple[float, float]:
    """Per-frame Y-PSNR/SSIM of bicubic x4 from the 4x4 box average (numpy, OpenCV, scikit-image),
    then the clip mean."""
    ps, ss = [], []
    with av.open(str(mp4)) as c:
        for f in c.decode(video=0):
            y, u, v = (torch.from_numpy(p) for p in decoded_planes(f))
            rgb = yuv420_to_rgb(y, u, v).permute(1, 2, 0).numpy() / 255.0
            H, W = rgb.shape[:2]
            lr = rgb.reshape(H // 4, 4, W // 4, 4, 3).mean((1, 3))
            bic = np.clip(cv2.resize(lr, (W, H), interpolation=cv2.INTER_CUBIC), 0, 1)
            ref, b = (rgb2ycbcr(np.round(x * 255) / 255)[4:-4, 4:-4, 0] for x in (rgb, bic))
            ps.append(peak_signal_noise_ratio(ref, b, data_range=255))
            ss.append(
                structural_similarity(
                    ref, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
                )
            )
    return float(np.mean(ps)), float(np.mean(ss))


def test_evaluate_table_and_bicubic_match_independent_computation(inputs):
    d, noflow, flow = inputs
    r = run(
        [
            PY,
            "-m",
            "vsr.cli",
            "evaluate",
            "--checkpoint",
            str(noflow),
            str(flow),
            str(d / "a.mp4"),
            str(d / "b.mp4"),
            "--device",
            "cpu",
            "--csv",
            str(d / "e.csv"),
            "--json",
            str(d / "e.json"),
        ]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert PSNR_COL in r.stdout and "| clip" in r.stdout  # a markdown table named by protocol
    df = pd.read_csv(d / "e.csv")
    per_clip = df[~df["clip"].str.startswith("mean over")]
    assert len(per_clip) == 2 * 3  # bicubic + one row per checkpoint, per clip
    assert sorted(per_clip.groupby("clip").size()) == [3, 3]
    assert set(per_clip["method"]) == {"bicubic", str(noflow), str(flow)}
    for clip, n in (("a.mp4", 5), ("b.mp4", 4)):
        rows = per_clip[per_clip["clip"].str.endswith(clip)].set_index("method")
        assert (rows["frames"] == n).all()
        p, s = bicubic_independently(d / clip)
        assert rows.loc["bicubic", PSNR_COL] == pytest.approx(p, abs=0.02)
        assert rows.loc["bicubic", SSIM_COL] == pytest.approx(s, abs=1e-3)
        for ck in (noflow, flow):
            assert 5 < rows.loc[str(ck), PSNR_COL] < 60
            assert rows.loc[str(ck), "gain over bicubic (dB)"] == pytest.approx(
                rows.loc[str(ck), PSNR_COL] - p, abs=0.02
            )
    mean = df[df["clip"].str.startswith("mean over 2")].set_index("method")
    assert mean.loc["bicubic", PSNR_COL] == pytest.approx(
        per_clip[per_clip["method"] == "bicubic"][PSNR_COL].mean()
    )
    doc = json.loads((d / "e.json").read_text())  # the same rows as the CSV, with the protocol
    assert doc["protocol"] and len(doc["rows"]) == len(df)
    assert pd.DataFrame(doc["rows"])[PSNR_COL].tolist() == pytest.approx(df[PSNR_COL].tolist())


def test_bad_checkpoint_is_one_line(inputs, tmp_path):
    d, noflow, _ = inputs
    ck = torch.load(noflow, weights_only=True)
    ck["cfg"]["model"]["features"] = [16, 4]  # cfg no longer matches the weights
    torch.save(ck, tmp_path / "mismatch.pt")
    torch.save({"model": ck["model"]}, tmp_path / "nocfg.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    r = run(
        [PY, "-m", "vsr.cli", "evaluate", "--checkpoint", str(tmp_path / "mismatch.pt"), str(d / "a.mp4")]
    )
    lines = r.stderr.strip().splitlines()  # on the console: exactly one line
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert "mismatch.pt" in lines[0] and "do not match" in lines[0] and "conv1" in lines[0]
    for bad, why in (
        ("nocfg.pt", "no training config"),
        ("text.pt", "not a PyTorch checkpoint"),
        ("missing.pt", "not found"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["evaluate", "--checkpoint", str(tmp_path / bad), str(d / "a.mp4")])
        msg = str(e.value)
        assert "\n" not in msg and bad in msg and why in msg, msg


def test_centred_windows_repeat_the_edges():
    assert list(centred_windows(range(4), 3)) == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    assert list(centred_windows(range(2), 5)) == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]
    assert list(centred_windows(range(1), 1)) == [[0]]
    assert list(centred_windows([], 3)) == []
