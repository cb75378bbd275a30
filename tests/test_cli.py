"""`vsr prepare` and `vsr bench-loader` through the command line (they moved to vsr.prepare /
vsr.bench.loader; tools/gpu_study.sh and the docs call them)."""

import argparse
import csv
import os

import yaml
from conftest import PY, ROOT, run

from vsr.prepare import config_val_every


def test_prepare_splits_like_the_workflow_and_bench_loader_writes_a_row(tmp_path):
    val_every = yaml.safe_load((ROOT / "config.yaml").read_text())["scenes"]["val_every"]
    assert config_val_every() == val_every  # one split rule: config.yaml's scenes.val_every
    n = val_every + 1
    r = run(
        [
            PY,
            "-m",
            "vsr.cli",
            "prepare",
            "--out",
            str(tmp_path),
            "--res",
            "540p",
            "--render",
            "960",
            "540",
            "--scenes",
            str(n),
            "--seconds",
            "0.15",
            "--jobs",
            "2",
            "--photo-scale",
            "1.0",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    val = sorted(p.stem for p in (tmp_path / "540p/scenes/val").glob("*.mp4"))
    train = sorted(p.stem for p in (tmp_path / "540p/scenes/train").glob("*.mp4"))
    assert val == [f"scene_{val_every - 1:03d}"] and len(train) == n - 1
    out = tmp_path / "bench.csv"
    r = run(
        [
            PY,
            "-m",
            "vsr.cli",
            "bench-loader",
            "--loader",
            "nvvl",
            "--backend",
            "cpu",
            "--data",
            str(tmp_path / "540p"),
            "--batch",
            "2",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loader=nvvl | backend=cpu | res=540p" in r.stdout
    (row,) = csv.DictReader(out.open())
    assert row["crop"] == "512x960" and float(row["sequences_per_s"]) > 0


def test_prepare_with_an_unreadable_config_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("scenes: {val_every: 1}\n")
    r = run([PY, "-m", "vsr.cli", "prepare", "--out", str(tmp_path), "--config", str(tmp_path / "c.yaml")])
    assert (
        r.returncode != 0
        and r.stderr.strip() == f"{tmp_path / 'c.yaml'}: scenes.val_every must be an integer >= 2, got 1"
    )


def test_prepare_refuses_a_magnifying_photo_scale(tmp_path):
    args = ["--out", str(tmp_path), "--photo-scale", "2", "--val-every", "3"]
    r = run([PY, "-m", "vsr.cli", "prepare", *args])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == "--photo-scale: must be in (0, 1] (never magnified), got 2.0"


def test_help_says_what_each_command_does_and_every_model_option_has_help_and_default(capsys):
    import pytest

    from vsr import __version__
    from vsr.cli import main, parser

    for argv in (["--help"], ["--version"], ["upscale", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    top, version, upscale, evaluate = out.split("usage: ")[1], f"vsr {__version__}", *out.split("usage: ")[2:]
    assert version in out and "Snakemake" in top
    for cmd in ("upscale", "evaluate", "prepare", "bench-loader", "nvdec-ceiling"):
        assert f"\n    {cmd}" in top
    assert "(default: 18)" in upscale and "(default: medium)" in upscale and "x4 .mp4 to write" in upscale
    assert "only the first N frames per clip (default: all)" in " ".join(evaluate.split())
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in ("upscale", "evaluate", "prepare"):
        for action in sub.choices[cmd]._actions:
            assert action.help, f"vsr {cmd} {action.dest}: no help"
