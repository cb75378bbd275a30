import csv
import hashlib
import re
import shutil

import pytest
from conftest import ROOT, run

from vsr.fs import sha256sum


def snake(*args, tmp):
    """Snakemake on a fresh working directory (nothing built yet), the repo's workflow."""
    return run(
        [
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp),
            "--configfile",
            str(ROOT / "config.yaml"),
            "--cores",
            "2",
            *args,
        ],
        timeout=300,
    )


def job_counts(out: str) -> dict:
    """Snakemake's "Job stats" table of a dry run: {rule: jobs}."""
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_dry_run_default_target(tmp_path):
    r = snake("-n", "results/table.md", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout + r.stderr)
    assert {k: counts.get(k) for k in ("synthesize", "split_scenes", "train", "aggregate")} == {
        "synthesize": 1,
        "split_scenes": 1,
        "train": 8,  # 2 resolutions x 2 loaders x 2 precisions
        "aggregate": 1,
    }, counts


def test_named_cell_lists_only_its_jobs(tmp_path):
    r = snake("-n", "train_nvvl_fp16", tmp=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    counts = job_counts(out)
    assert counts["train"] == 2 and "aggregate" not in counts and "sample" not in counts, counts
    cells = set(re.findall(r"wildcards: res=(\w+), loader=(\w+), precision=(\w+)", out))
    assert cells == {("540p", "nvvl", "fp16"), ("720p", "nvvl", "fp16")}


def test_bad_config_value_names_the_key(tmp_path):
    r = snake("-n", "--config", "transcode={crf: 99}", tmp=tmp_path)
    assert r.returncode != 0
    assert "crf" in (r.stdout + r.stderr)


def checkout(dst):
    """A user's clone: the workflow and package files of this checkout, tiny.yaml as config."""
    dst.mkdir()
    for name in ("Snakefile", "rules", "workflow", "vsr", "report", "envs"):
        src = ROOT / name
        copy = shutil.copytree if src.is_dir() else shutil.copy2
        copy(src, dst / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    shutil.copy2(ROOT / "tests/config/tiny.yaml", dst / "config.yaml")
    return dst


def test_moved_or_copied_project_is_up_to_date(tmp_path):
    """The checkout's path is no rerun trigger, and
    the trainer's one-line error reaches the console."""
    a = checkout(tmp_path / "a")
    r = run(["snakemake", "--cores", "2", "train_nvvl_fp32"], cwd=a, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.copytree(a, tmp_path / "copy", symlinks=True)  # cp -a: timestamps kept
    shutil.move(a, tmp_path / "moved")
    for d in ("copy", "moved"):
        r = run(["snakemake", "--cores", "2", "-n", "train_nvvl_fp32"], cwd=tmp_path / d, timeout=120)
        assert "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    # a trainer that fails: its last log line (the one-line error) is on the console
    (tmp_path / "moved/bad.yaml").write_text("study: [{res: 540p, crop: [1024, 2048], batch: 2}]\n")
    r = run(
        ["snakemake", "--cores", "2", "--configfile", "bad.yaml", "--", "train_nvvl_fp32"],
        cwd=tmp_path / "moved",
    )
    assert r.returncode != 0
    shown = r.stderr.split("RuleException")[0].strip().splitlines()[-1]
    assert shown.startswith("[vsr.train] error: crop 1024x2048 is larger than the frames"), r.stderr[-3000:]


def overlay(tmp, text):
    (tmp / "overlay.yaml").write_text(text)
    return str(tmp / "overlay.yaml")


@pytest.mark.parametrize(
    "text,want",
    [
        (
            "study: [{res: 540p, crop: null, batch: 0}]\n",
            "config study[0].batch: 0 is less than the minimum 1",
        ),
        ("train: {iteratons: 3}\n", "config train: unknown setting 'iteratons' (did you mean 'iterations'?)"),
        (
            "source: {synthetic: {width: 640, height: 272}}\n",
            "config source.synthetic: source 640x272 is smaller than 540p and 720p; drop 540p and 720p from"
            " resolutions",
        ),
        (
            "flownet: {mode: frozen, checkpoint: /nowhere/FlowNet2-SD.pth.tar}\n",
            "config flownet.checkpoint: /nowhere/FlowNet2-SD.pth.tar: file not found",
        ),
    ],
)
def test_bad_config_is_one_line_at_start_with_the_details_in_a_log(tmp_path, text, want):
    r = snake("-n", "--configfile", str(ROOT / "config.yaml"), overlay(tmp_path, text), tmp=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Failed validating" not in out and "Traceback" not in out
    shown = out.strip().splitlines()[-1]
    assert shown in (f"[vsr.workflow] {want}", f"[vsr.workflow] {want} (details: logs/config.log)"), out
    if "details" in shown:
        assert "Failed validating" in (tmp_path / "logs/config.log").read_text()


def test_missing_source_file_is_an_error_even_after_a_run(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/source.mp4").write_bytes(b"an earlier run's source")
    cfg = overlay(tmp_path, "source: {kind: file, path: my.mp4}\n")
    r = snake("--configfile", str(ROOT / "config.yaml"), cfg, tmp=tmp_path)
    assert r.returncode != 0
    assert (r.stdout + r.stderr).strip().splitlines()[
        -1
    ] == "[vsr.workflow] config source.path: my.mp4: file not found"


def fingerprint(cwd, *cfg):
    r = run(["snakemake", "--cores", "2", "-n", "-p", "train_nvvl_fp32", *cfg], cwd=cwd, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return re.search(r'"data_fingerprint": "([0-9a-f]{64})"', r.stdout)[1]


def test_a_new_source_replaces_every_scene_file_and_the_fingerprint(tmp_path):
    """Files of an earlier source and a killed job's temporaries are never read or counted;
    the trainer is told which data it trains on (sha256 of scenes.csv, which names the source)."""
    a = checkout(tmp_path / "a")
    r = run(["snakemake", "--cores", "2", "data"], cwd=a, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[vsr.media] synthesize: scene 3/3 done" in r.stderr  # progress on the console
    first = fingerprint(a)
    assert first == hashlib.sha256((a / "data/scenes.csv").read_bytes()).hexdigest()
    (a / "data/540p/scenes/val/scene_005.mp4").write_bytes(b"an earlier source's scene")
    shutil.rmtree(a / "data/540p/frames/train/scene_000")  # extract_frames killed: its temporary stays
    (a / "data/540p/frames/train/.scene_000.66p04htm").mkdir()
    (a / "data/540p/frames/train/.scene_000.66p04htm/00001.png").write_bytes(b"half")
    cfg = ["--configfile", "config.yaml", overlay(a, "source: {synthetic: {seed: 1}}\n")]
    r = run(["snakemake", "--cores", "2", "data", *cfg], cwd=a, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "removed val/scene_005.mp4 (not a scene of data/scenes.csv)" in r.stderr
    rows = list(csv.DictReader((a / "data/scenes.csv").open()))
    assert {r["source_sha256"] for r in rows} == {sha256sum(a / "data/source.mp4")}
    for kind, suffix in (("scenes", ".mp4"), ("frames", "")):
        want = sorted(f"{r['split']}/{r['scene']}{suffix}" for r in rows if r["split"] != "dropped")
        assert (a / f"data/540p/{kind}.txt").read_text().split() == want
        have = sorted(
            str(p.relative_to(a / "data/540p" / kind)) for p in (a / "data/540p" / kind).glob("*/*")
        )
        assert have == want  # nothing else, hidden or not
    assert fingerprint(a, *cfg) not in (first, hashlib.sha256(b"").hexdigest())
