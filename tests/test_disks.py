"""Full and read-only disks, and the user's umask. Failures are made by the
OS (a file-size limit, a folder that cannot be created), not by mocks."""

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT
from videos import encode, scene_frames

from vsr.data.index import _cache_file, build_index
from vsr.fs import atomic_dir, atomic_path
from vsr.media.transcode import extract_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("clip") / "clip.mp4", scene_frames(scenes=1, n=6))


def test_full_disk_during_extract_frames_leaves_no_folder(clip, tmp_path):
    """RLIMIT_FSIZE (what a full filesystem does to a write: EFBIG/ENOSPC) below one PNG's size."""
    extract_frames(clip, tmp_path / "ok")
    sizes = sorted(f.stat().st_size for f in (tmp_path / "ok").iterdir())
    code = f"""
        import resource, signal
        from vsr.media.io import MediaError
        from vsr.media.transcode import extract_frames
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, ({sizes[0] // 2}, {sizes[0] // 2}))
        try:
            extract_frames({str(clip)!r}, {str(tmp_path / "full")!r})
        except MediaError as e:
            print(e)
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{tmp_path / 'full' / '00001.png'}: cannot write (File too large)"), r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # no half folder, no temp left


def test_read_only_data_caches_the_index_elsewhere(clip, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: a file where the cache folder would be
        (data / ".index").write_text("")
    else:
        data.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    idx = build_index(clip, data / ".index")
    assert idx.frames == 6
    assert "not writable" in capsys.readouterr().err
    cached = _cache_file(clip, tmp_path / "xdg/vsr/index")
    assert cached.is_file()
    assert build_index(clip, data / ".index") == idx  # read back from the user's cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(data / ".index"))  # nothing writable: in memory
    cached.unlink()
    assert build_index(clip, data / ".index").frames == 6


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_outputs_follow_the_umask(clip, tmp_path, mask):
    old = os.umask(mask)
    try:
        with atomic_path(tmp_path / "f.txt") as t:
            t.write_text("x")
        extract_frames(clip, tmp_path / "frames")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "frames").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "frames/00001.png").stat().st_mode & 0o777 == 0o666 & ~mask
