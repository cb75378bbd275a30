"""Scale-out: conda envs, the SLURM workflow profile (dry and on a real one-node SLURM), and
torchrun's c10d rendezvous across two "nodes" on this machine."""

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import tomllib

import pytest
import yaml
from conftest import PY, ROOT, run

TINY = ROOT / "tests" / "config" / "tiny.yaml"
# conda-forge names of pyproject's PyPI packages, where they differ
CONDA_NAMES = {
    "torch": "pytorch",
    "opencv-python-headless": "py-opencv",
    "snakemake": "snakemake-minimal",
    "matplotlib": "matplotlib-base",
}


def _name(req: str) -> str:
    return re.split(r"[ <>=!\[;]", req.strip(), maxsplit=1)[0].lower()


def test_conda_env_lists_pyproject_packages():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    want = {CONDA_NAMES.get(_name(d), _name(d)) for d in deps}
    env = yaml.safe_load((ROOT / "envs" / "vsr.yaml").read_text())
    have = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert have == want
    for smk in (ROOT / "rules").glob("*.smk"):  # every rule with an action names the env
        text = smk.read_text()
        assert text.count('"../envs/vsr.yaml"') == len(re.findall(r"\n\s+(script|shell):", text))


def snake(*args, tmp, config=TINY, overlay=None, timeout=300):
    """Snakemake in a fresh workdir; `overlay` (a dict) is merged over the config file, as a
    user's own --configfile would be (--config key={a: 1} would give strings, not numbers)."""
    files = [str(config)]
    if overlay:
        (tmp / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        files.append(str(tmp / "overlay.yaml"))
    return run(
        ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp), "--configfile", *files, *args],
        timeout=timeout,
    )


def _jobs(out: str) -> dict:
    """rule name -> list of resource strings of its jobs in a dry run's output."""
    jobs, rule = {}, None
    for line in out.splitlines():
        if m := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            jobs.setdefault(rule, []).append(line.strip())
    return jobs


def profile_dry_run(tmp, overlay) -> str:
    """`snakemake -n train_nvvl_fp32` with the SLURM profile and the default config + overlay."""
    profile = str(ROOT / "profiles" / "slurm")
    r = snake(
        "-n",
        "--workflow-profile",
        profile,
        "--",
        "train_nvvl_fp32",
        tmp=tmp,
        config=ROOT / "config.yaml",
        overlay=overlay,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


def test_slurm_profile_dry_run_shows_requests(tmp_path):
    out = profile_dry_run(tmp_path, {"train": {"gpus": 4, "threads": 32}})
    jobs = _jobs(out)
    assert "mem_mb=4000" in jobs["synthesize"][0] and "runtime=30" in jobs["synthesize"][0]
    (train,) = jobs["train"][:1]
    for want in ("gpu=4", "cpus_per_gpu=8", "mem_mb=64000", "runtime=240"):
        assert want in train, train
    assert "vsr.train.launch --nproc-per-node 4" in out


def test_multi_node_rule_uses_srun_and_c10d(tmp_path):
    out = profile_dry_run(tmp_path, {"train": {"gpus": 8, "nodes": 2, "threads": 64}})
    train = _jobs(out)["train"][0]
    for want in ("nodes=2", "tasks=2", "tasks_per_gpu=0", "mpi=srun", "gres=gpu:8"):
        assert want in train, train
    assert "gpu=" not in train.replace("tasks_per_gpu", "").replace("cpus_per_gpu", "")
    assert "srun --ntasks-per-node=1" in out and "vsr.train.launch --nproc-per-node 8" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_one_process_each_c10d(clipdir, tmp_path):
    """Two launchers (as two SLURM nodes would start) meet at a c10d rendezvous on localhost."""
    from test_train import CFG

    out = tmp_path / "mn"
    env = {
        **os.environ,
        "VSR_NNODES": "2",
        "VSR_RDZV_ENDPOINT": f"127.0.0.1:{_free_port()}",
        "SLURM_JOB_ID": "4242",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        PY,
        "-m",
        "vsr.train.launch",
        "--nproc-per-node",
        "1",
        "-m",
        "vsr.train",
        "--cfg",
        json.dumps(dict(CFG, iterations=2, val_every=2)),
        "--data",
        str(clipdir),
        "--out",
        str(out),
    ]
    ps = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert json.loads((out / "sysmon.json").read_text())["world_size"] == 2
    assert any("x2:" in log for log in logs)  # rank 0 reports a world of 2


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    r = subprocess.run(["timeout", "10", "sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return "idle" in r.stdout or "mix" in r.stdout


@pytest.fixture(scope="module")
def slurm():
    if not _slurm_up():
        if os.environ.get("VSR_TEST_SLURM") == "1":  # .ci/run started a cluster: it must work
            pytest.fail("VSR_TEST_SLURM=1 but no SLURM node is idle (tools/slurm_local.sh)")
        pytest.skip("no SLURM cluster here: sudo bash tools/slurm_local.sh start")
    return True


def test_data_half_and_a_training_cell_through_slurm(slurm, tmp_path):
    r = snake(
        "--workflow-profile",
        str(ROOT / "profiles" / "slurm"),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--set-threads",  # replaces the profile's set-threads: every multi-core rule, sized to the 2-CPU node
        "synthesize=2",
        "transcode=1",
        "train=2",
        "--set-resources",
        "train:mem_mb=4000",
        "--latency-wait",
        "5",
        "--",
        "data",
        "train_nvvl_fp32",
        tmp=tmp_path,
        timeout=900,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    lines = [json.loads(x) for x in (tmp_path / "runs/540p/nvvl_fp32/metrics.jsonl").open()]
    assert [x["iter"] for x in lines if x["kind"] == "train"] == [1, 2]
    # every job but the local aggregators went through sbatch
    sent = set(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/rule_(\w+)/", out))
    assert sent == {"synthesize", "split_scenes", "transcode", "extract_frames", "train"}, sent
    assert len(list((tmp_path / "data/540p/frames").glob("*/*/*.png"))) == sum(
        int(r["frames"]) for r in csv.DictReader((tmp_path / "data/scenes.csv").open())
    )
