"""`vsr bench-loader` and `vsr --help` through the command line."""

import argparse
import csv
import os

from conftest import PY, run


def test_bench_loader_writes_a_row(clipdir, tmp_path):
    out = tmp_path / "bench.csv"
    args = ["--loader", "nvvl", "--backend", "cpu", "--data", str(clipdir), "--batch", "2", "--iters", "2"]
    args += ["--warmup", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]
    r = run([PY, "-m", "vsr.cli", "bench-loader", *args], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loader=nvvl | backend=cpu | res=data540" in r.stdout
    (row,) = csv.DictReader(out.open())
    assert row["crop"] == "512x960" and float(row["sequences_per_s"]) > 0


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
    for cmd in ("upscale", "evaluate", "bench-loader", "nvdec-ceiling"):
        assert f"\n    {cmd}" in top
    assert "(default: 18)" in upscale and "(default: medium)" in upscale and "x4 .mp4 to write" in upscale
    assert "only the first N frames per clip (default: all)" in " ".join(evaluate.split())
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in ("upscale", "evaluate"):
        for action in sub.choices[cmd]._actions:
            assert action.help, f"vsr {cmd} {action.dest}: no help"
