import json
import os
import signal
import subprocess
import time

import torch
from conftest import PY, ROOT, run

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
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in lines if x["kind"] == "train")
    assert json.loads((out / "sysmon.json").read_text())["world_size"] == 2


def test_resume_after_sigkill(clipdir, tmp_path):
    out = tmp_path / "res"
    cfg = dict(CFG, iterations=8, loader="png")
    cmd = [PY, "-m", "vsr.train", "--cfg", json.dumps(cfg), "--data", str(clipdir), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "train_state.pt"
    t0 = time.time()
    while time.time() - t0 < 300:
        if state.exists() and torch.load(state, weights_only=False)["iter"] >= 4:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = torch.load(state, weights_only=False)["iter"]
    assert 4 <= done < 8 and not (out / "metrics.jsonl").exists()
    r = run(cmd, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {state} at iteration {done}" in r.stdout
    its = [x["iter"] for x in _lines(out) if x["kind"] == "train"]
    assert its == list(range(1, 9))  # the curve continues, no gap, no repeat


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
    assert r.stderr.strip().splitlines()[-1].startswith(f"{tmp_path}: no train scene .mp4")
