"""`vsr upscale` / `vsr evaluate` at their edges: unsafe checkpoints, outputs that would destroy
the input, truncated and unusable inputs, bad arguments, interrupted runs: one console line
each, checked before the work, nothing half-written left behind."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import PY, ROOT, run
from tiny import identity_checkpoint, make_checkpoint, make_clip

from vsr.cli import main
from vsr.errors import CheckpointError
from vsr.media.io import probe
from vsr.models.flownet_sd import FlowNetSD, load_checkpoint


class Evil:
    """Unpickling this runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("edges")
    make_clip(d / "in.mp4", 64, 64, frames=3)
    identity_checkpoint(d / "ident.pt")
    return d


def vsr(*args, cwd):
    """`vsr ARGS` in a fresh process: (exit status, console lines)."""
    r = run([PY, "-m", "vsr.cli", *map(str, args)], cwd=cwd)
    return r.returncode, r.stderr.strip().splitlines()


def vsr_here(*args, cwd, capsys) -> str:
    """`vsr ARGS` in this process (cheaper): the one line it exits with."""
    os.chdir(cwd)
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    if e.value.code == 2:  # argparse: usage, then the line naming the argument
        return err[-1]
    assert isinstance(e.value.code, str) and "\n" not in e.value.code and not err, (e.value.code, err)
    return e.value.code


def one_line(rc, lines, *words):
    assert rc != 0 and len(lines) == 1, lines
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs(d, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": Evil(marker), "cfg": {}}, tmp_path / "evil.pt")
    torch.save({"state_dict": Evil(marker)}, tmp_path / "evil.pth.tar")
    out = tmp_path / "out.mp4"
    upscale = vsr("upscale", d / "in.mp4", out, "--checkpoint", "evil.pt", cwd=tmp_path)
    one_line(*upscale, "evil.pt", "refused")
    one_line(*vsr("evaluate", "--checkpoint", "evil.pt", d / "in.mp4", cwd=tmp_path), "evil.pt", "refused")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(FlowNetSD(0.0625), tmp_path / "evil.pth.tar")
    assert not marker.exists() and not out.exists()


def test_the_output_never_replaces_the_input(d, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "same.mp4"
    src.write_bytes((d / "in.mp4").read_bytes())
    (tmp_path / "link.mp4").symlink_to(src)
    before = src.read_bytes()
    for out in ("same.mp4", "./same.mp4", "link.mp4"):
        assert "is the input" in vsr_here(
            "upscale", "same.mp4", out, "--checkpoint", d / "ident.pt", cwd=tmp_path, capsys=capsys
        )
    assert src.read_bytes() == before


def test_unusable_outputs_and_arguments_are_one_line_before_any_work(d, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root writes anywhere: take a folder no one can create files in
        ro = Path("/sys/kernel")
    make_clip(tmp_path / "odd.mp4", 97, 65, frames=2, pix_fmt="yuv444p")
    make_clip(tmp_path / "tiny.mp4", 2, 2, frames=2, pix_fmt="yuv444p")
    ck = ["--checkpoint", d / "ident.pt"]
    cases = [
        (("upscale", d / "in.mp4", "adir", *ck), "is a directory"),
        (("upscale", d / "in.mp4", "afile/out.mp4", *ck), "is a file, not a folder"),
        (("upscale", d / "in.mp4", ro / "out.mp4", *ck), "cannot write in"),
        (("upscale", "odd.mp4", "o.mp4", *ck), "97x65: width and height must be even"),
        (("upscale", "tiny.mp4", "o.mp4", *ck), "2x2: width and height must be even (4:2:0) and at least 16"),
        (("evaluate", *ck, "odd.mp4"), "97x65"),
        (("upscale", d / "in.mp4", "o.mp4", *ck, "--preset", "bogus"), "invalid choice: 'bogus'"),
        (("upscale", d / "in.mp4", "o.mp4", *ck, "--crf", "60"), "must be 0 (lossless) .. 51, got 60"),
        (("evaluate", *ck, d / "in.mp4", "--max-frames", "0"), "--max-frames: must be at least 1, got 0"),
        (("evaluate", *ck, d / "in.mp4", "--max-frames", "-1"), "must be at least 1, got -1"),
    ]
    for args, why in cases:
        assert why in vsr_here(*args, cwd=tmp_path, capsys=capsys), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "odd.mp4", "ro", "tiny.mp4"]
    assert not list((tmp_path / "adir").iterdir())


def test_a_truncated_input_says_what_it_promised_and_what_decoded(tmp_path, d):
    make_clip(tmp_path / "full.mp4", 64, 64, frames=24, faststart=True)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.7)])
    rc, lines = vsr("upscale", "cut.mp4", "out.mp4", "--checkpoint", d / "ident.pt", cwd=tmp_path)
    line = one_line(rc, lines, "cut.mp4", "header promises 24 frames")
    n = int(line.split("frames, ")[1].split()[0])
    assert 0 < n < 24 and not list(tmp_path.glob("*out.mp4*"))
    r = run(
        [PY, "-m", "vsr.cli", "evaluate", "--checkpoint", str(d / "ident.pt"), "cut.mp4", "--csv", "e.csv"],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert f"its header promises 24 frames, {n} decoded; using those {n}" in r.stderr
    assert set(pd.read_csv(tmp_path / "e.csv")["frames"]) == {n}  # the table says how many were scored


def _wait_for(pattern, where, proc, timeout=120):
    t0 = time.monotonic()
    while not list(where.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def test_an_interrupted_upscale_leaves_no_temporary(tmp_path, d):
    make_clip(tmp_path / "long.mp4", 96, 64, frames=90)
    cmd = [PY, "-m", "vsr.cli", "upscale", "long.mp4", "out.mp4", "--checkpoint", str(d / "ident.pt")]
    cmd += ["--preset", "veryslow"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(".out.mp4.*", tmp_path, p)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1].strip().splitlines()
    assert p.returncode != 0 and err == ["vsr upscale: interrupted; nothing half-written was kept"], err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["long.mp4"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.DEVNULL, env=env)
    _wait_for(".out.mp4.*", tmp_path, p)
    p.kill()  # SIGKILL: nothing can clean up now; the next run does
    p.wait()
    (left,) = tmp_path.glob(".out.mp4.*")
    r = run(cmd[:-2] + ["--preset", "ultrafast"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"removed {left.name}, left by an interrupted run" in r.stderr.replace(str(tmp_path) + "/", "")
    assert "frames/s" in r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["long.mp4", "out.mp4"]
    assert probe(tmp_path / "out.mp4")["frames"] == 90


def test_flownet_file_of_the_wrong_kind_or_width_is_one_short_line(tmp_path):
    vsrnet = make_checkpoint(tmp_path / "final.pt", flow="finetune")
    with pytest.raises(CheckpointError, match="this is a VSRNet checkpoint .* not FlowNet2-SD"):
        load_checkpoint(FlowNetSD(0.0625), vsrnet)
    torch.save({"state_dict": FlowNetSD(0.125).state_dict()}, tmp_path / "wide.pth.tar")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(FlowNetSD(0.0625), tmp_path / "wide.pth.tar")
    msg = str(e.value)
    assert "width 0.125" in msg and "flownet.width is 0.0625" in msg and len(msg) < 200, msg
