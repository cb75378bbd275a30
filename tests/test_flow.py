"""Flow without downloaded weights: FlowNet-SD pretrained on rendered pairs, and its rule."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, run

from vsr.models.flownet_sd import FlowNetSD, load_checkpoint
from vsr.train.pretrain_flow import multiscale_epe, pair_input, render_pair

TINY = ROOT / "tests" / "config" / "tiny.yaml"


def test_rendered_pairs_and_supervised_gradients_reach_every_layer():
    rng = np.random.default_rng(0)
    frames, flow = zip(*(render_pair(rng, 128, 4.0) for _ in range(2)))
    frames, flow = torch.stack(frames), torch.stack(flow)
    assert frames.shape == (2, 2, 3, 128, 128) and flow.shape == (2, 2, 128, 128)
    speed = flow.norm(dim=1) / 4  # LR px per frame: mostly sub-pixel to a few pixels
    assert 0.02 < speed.median() < 4.0 and speed.max() < 8
    net = FlowNetSD(0.125)
    loss = multiscale_epe(net(pair_input(frames)), flow)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_pretrain_rule_writes_a_strict_checkpoint_and_reports_epe(tmp_path):
    overlay = {
        "flownet": {
            "mode": "finetune",
            "pretrain": {"iterations": 3, "batch": 2, "size": 128, "eval_pairs": 2, "workers": 0},
        }
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--cores", "2"]
    cfgs = ["--configfile", str(TINY), str(tmp_path / "overlay.yaml")]  # takes every arg after it
    r = run([*cmd, "runs/flownet/pretrained.pth.tar", *cfgs], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    load_checkpoint(FlowNetSD(0.0625), tmp_path / "runs/flownet/pretrained.pth.tar")
    m = json.loads((tmp_path / "runs/flownet/pretrain_metrics.json").read_text())
    assert m["iterations"] == 3 and set(m["epe_rendered_hr_px"]) == {"zero", "dis", "flownet"}
    assert m["epe_rendered_hr_px"]["dis"] < m["epe_rendered_hr_px"]["zero"]
    assert m["real_pairs"] == 2 and m["warp_psnr_real_db"]["dis"] > m["warp_psnr_real_db"]["zero"]
    dry = run([*cmd, "-n", "-p", "train_nvvl_fp32", *cfgs], timeout=120)  # the cell trains from it
    assert dry.returncode == 0, dry.stderr
    assert '"checkpoint": "runs/flownet/pretrained.pth.tar"' in dry.stdout
    assert "held-out EPE" in (tmp_path / "logs/pretrain_flownet.log").read_text()


def test_pretrain_refuses_a_speed_range_that_is_empty(tmp_path):
    from vsr.train.pretrain_flow import pretrain

    with pytest.raises(ValueError, match=r"need 0 < min_speed < max_speed, got 2.0 and 1.0"):
        pretrain(0.0625, {"min_speed": 2.0, "max_speed": 1.0}, tmp_path / "c.pt", tmp_path / "m.json")
    assert not (tmp_path / "c.pt").exists()
