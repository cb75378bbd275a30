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
