"""The whole default study, wet, on this machine: `snakemake --cores all results/table.md` with
the repository's config.yaml in a fresh working directory (every stage real; ~6 min on 2 cores).
Then the outputs are checked as a user would read them."""

import csv
import json
import math

import av
import pandas as pd
import pytest
from conftest import ROOT, run

from vsr.media.io import probe

CELLS = [(r, lo, p) for r in ("540p", "720p") for lo in ("nvvl", "png") for p in ("fp32", "fp16")]


def snake(workdir, *args, timeout=300):
    """Snakemake with the repository's workflow and default config.yaml in `workdir`."""
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    return run([*cmd, "--configfile", str(ROOT / "config.yaml"), *args], timeout=timeout)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    r = snake(d, "--cores", "all", "results/table.md", timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return d


def test_scenes_and_data_half(study):
    cuts = json.loads((study / "data/source_cuts.json").read_text())["cuts"]
    rows = list(csv.DictReader((study / "data/scenes.csv").open()))
    assert [int(r["start_frame"]) for r in rows[1:]] == cuts  # PySceneDetect found every cut
    assert [r["split"] for r in rows] == ["train", "train", "val"] * 2
    for res, (w, h) in {"540p": (960, 540), "720p": (1280, 720)}.items():
        for r in rows:
            mp4 = study / f"data/{res}/scenes/{r['split']}/{r['scene']}.mp4"
            info = probe(mp4)
            assert (info["width"], info["height"], info["pix_fmt"]) == (w, h, "yuv420p")
            assert info["frames"] == int(r["frames"])
            with av.open(str(mp4)) as c:
                keys = [i for i, p in enumerate(c.demux(c.streams.video[0])) if p.size and p.is_keyframe]
            assert keys == list(range(0, info["frames"], 4))
            pngs = list((study / f"data/{res}/frames/{r['split']}/{r['scene']}").glob("*.png"))
            assert len(pngs) == int(r["frames"])


def test_table_has_every_cell_with_plausible_numbers(study):
    text = (study / "results/table.md").read_text()
    assert text.startswith("# VSRNet loader benchmark") and "CPU (" in text
    df = pd.read_csv(study / "results/benchmark.csv")
    assert len(df) == 8
    got = {
        (r["Input resolution"], "nvvl" if r["Data loader"] == "NVVL" else "png", r["Numerical precision"])
        for _, r in df.iterrows()
    }
    assert got == set(CELLS)
    numeric = [
        "CPU load (cores)",
        "Peak host memory (%)",
        "Disk space for dataset (GB)",
        "Per iteration data time (ms, synced sample)",
        "Wall (ms/it)",
        "Images/s",
        "Val PSNR (dB)",
        "PSNR gain over bicubic (dB)",
    ]
    for col in numeric:
        assert all(math.isfinite(v) for v in df[col]), col
    assert (df["CPU load (cores)"] > 0).all() and (df["Peak host memory (%)"].between(0.1, 100)).all()
    assert (df["Wall (ms/it)"] > 0).all() and (df["Val PSNR (dB)"].between(5, 60)).all()
    disk = df.groupby(["Input resolution", "Data loader"])["Disk space for dataset (GB)"].first()
    for res in ("540p", "720p"):
        assert disk[(res, ".png")] > 10 * disk[(res, "NVVL")] > 0  # mp4 is far smaller
    header = [c.strip() for c in text.splitlines()[4].split("|")[1:-1]]
    assert header[:10] == [  # the seed's columns, in the seed's order
        "Data loader",
        "Input resolution",
        "Crop size",
        "Numerical precision",
        "PyTorch loader workers (.png only)",
        "Batch size",
        "CPU load (cores)",
        "Peak host memory (%)",
        "Disk space for dataset (GB)",
        "Per iteration data time (ms, synced sample)",
    ]
    for name in ("psnr.png", "train_loss.png"):
        assert (study / "results" / name).read_bytes()[:4] == b"\x89PNG"


def test_runs_log_curves_and_rerun_is_a_no_op(study):
    for res, lo, p in CELLS:
        out = study / f"runs/{res}/{lo}_{p}"
        lines = [json.loads(x) for x in (out / "metrics.jsonl").open()]
        assert [x["iter"] for x in lines if x["kind"] == "train"] == [1, 2]
        assert any(x["kind"] == "val" for x in lines)
        assert list((out / "tb").glob("events.out.tfevents.*"))
    r = snake(study, "--cores", "all", "-n", "results/table.md")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr


def test_report_html_includes_table_and_plots(study):
    r = snake(study, "--report", "results/report.html")
    assert r.returncode == 0, r.stderr[-3000:]
    html = (study / "results/report.html").read_text(errors="ignore")
    for name in ("table.md", "psnr.png", "train_loss.png"):
        assert name in html
