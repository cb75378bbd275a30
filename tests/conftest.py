"""Shared fixtures: real encodes with PyAV/ffmpeg, made once per session in a temp folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """A 4-scene synthetic source (480x270, 60 fps, 0.5 s per scene) and its true cuts."""
    from vsr.media.synth import synthesize

    d = tmp_path_factory.mktemp("synth")
    cuts = synthesize(
        d / "source.mp4",
        d / "cuts.json",
        width=480,
        height=270,
        fps=60,
        scenes=4,
        seconds_per_scene=0.5,
        seed=1,
    )
    return d / "source.mp4", cuts


@pytest.fixture(scope="session")
def clipdir(tmp_path_factory):
    """data/{res}-like folder: 540p scenes (mp4, GOP 4) and their PNG frames, train + val."""
    from vsr.media.synth import render_frames
    from vsr.media.transcode import encode_frames, extract_frames

    d = tmp_path_factory.mktemp("data540")
    frames = [f for _, f in render_frames(960, 540, 60, 3, 0.25, 5)]
    for i, split in enumerate(["train", "train", "val"]):
        mp4 = d / "scenes" / split / f"scene_{i:03d}.mp4"
        encode_frames(frames[i * 15 : (i + 1) * 15], mp4, 60, keyframe_interval=4)
        extract_frames(mp4, d / "frames" / split / f"scene_{i:03d}")
    return d


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), capture_output=True, text=True, **kw)


PY = sys.executable
