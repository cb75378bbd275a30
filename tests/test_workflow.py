from conftest import ROOT, run


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


def test_dry_run_default_target(tmp_path):
    r = snake("-n", "results/table.md", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for job in ("synthesize", "split_scenes", "train", "aggregate"):
        assert job in out


def test_named_cell_lists_only_its_jobs(tmp_path):
    r = snake("-n", "train_nvvl_fp16", tmp=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "aggregate" not in out and "train_png" not in out


def test_bad_config_value_names_the_key(tmp_path):
    r = snake("-n", "--config", "transcode={crf: 99}", tmp=tmp_path)
    assert r.returncode != 0
    assert "crf" in (r.stdout + r.stderr)


def checkout(dst):
    """A user's clone: the workflow and package files of this checkout, tiny.yaml as config."""
    import shutil

    dst.mkdir()
    for name in ("Snakefile", "rules", "workflow", "vsr", "report", "envs"):
        src = ROOT / name
        copy = shutil.copytree if src.is_dir() else shutil.copy2
        copy(src, dst / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    shutil.copy2(ROOT / "tests/config/tiny.yaml", dst / "config.yaml")
    return dst


def test_moved_or_copied_project_is_up_to_date(tmp_path):
    """Issue 16, group 1 (workflow part): the checkout's path is no rerun trigger; group 7:
    the trainer's one-line error reaches the console."""
    import shutil

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
