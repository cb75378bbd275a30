"""A run directory's life: one owner, full history across reruns and extensions, corrupt
checkpoints, and settings that cannot run refused at start (issue: nothing lost, nothing silent)."""

import json
import os
import shlex
import shutil
import subprocess
import time

import pytest
import torch
from conftest import PY, ROOT, run
from test_train import CFG, train

PNG = dict(CFG, loader="png", iterations=4, val_every=2, checkpoint_every=2)


def _records(out, kind="train"):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if kind in x]


def _train_iters(out):
    return [r["iter"] for r in _records(out) if r["kind"] == "train"]


def _last_line(r):
    return r.stderr.strip().splitlines()[-1]


def test_one_owner_at_a_time_and_a_dead_owner_holds_nothing(clipdir, tmp_path):
    out = tmp_path / "run"
    cfg = dict(PNG, iterations=400, val_every=1000, checkpoint_every=1000)
    cmd = [PY, "-m", "vsr.train", "--cfg", json.dumps(cfg), "--data", str(clipdir), "--out", str(out)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not (out / ".lock").exists() or not (out / ".lock").read_text():
            assert time.time() - t0 < 120 and first.poll() is None
            time.sleep(0.1)
        r = train(cfg, clipdir, out, timeout=120)  # snakemake rerun beside an orphaned trainer
        assert r.returncode != 0
        assert f"another trainer (pid {first.pid}) is writing this run" in _last_line(r)
    finally:
        first.kill()
        first.wait()
    r = train(PNG, clipdir, out, timeout=300)  # the killed owner's lock is gone with it
    assert r.returncode == 0, r.stderr[-2000:]
    assert _train_iters(out) == [1, 2, 3, 4]


def test_forced_rerun_and_extension_keep_the_whole_history(clipdir, tmp_path):
    out = tmp_path / "run"
    assert train(PNG, clipdir, out, timeout=300).returncode == 0
    first = _records(out, "")
    for name in ("metrics.jsonl", "final.pt", "sysmon.json"):  # what --forcerun deletes
        (out / name).unlink()
    r = train(PNG, clipdir, out, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "continuing from" in r.stderr and "at iteration 4" in r.stderr
    assert _records(out, "") == first  # nothing retrained, nothing lost
    assert json.loads((out / "sysmon.json").read_text())["world_size"] == 1
    r = train(dict(PNG, iterations=6), clipdir, out, timeout=300)  # train.iterations raised
    assert r.returncode == 0, r.stderr[-2000:]
    assert _train_iters(out) == list(range(1, 7))
    assert [v["iter"] for v in _records(out, '"val"')] == [2, 4, 6]
    r = train(dict(PNG, lr_max=3e-3), clipdir, out, timeout=300)  # what it learns from changed
    assert r.returncode == 0, r.stderr[-2000:]
    assert "settings changed since the checkpoint (lr_max): starting this run over" in r.stderr
    assert _train_iters(out) == [1, 2, 3, 4]


def test_a_corrupt_checkpoint_falls_back_or_names_itself(clipdir, tmp_path):
    out = tmp_path / "run"
    cfg = dict(PNG, checkpoint_every=1)
    assert train(dict(cfg, iterations=3), clipdir, out, timeout=300).returncode == 0
    state = out / "train_state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # truncated (full disk, killed mid-copy)
    r = train(cfg, clipdir, out, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{state} is unreadable" in r.stderr and "continuing from the previous checkpoint" in r.stderr
    assert f"continuing from {out / 'train_state.prev.pt'} at iteration 2" in r.stderr  # the file loaded
    assert _train_iters(out) == [1, 2, 3, 4]
    for p in (state, out / "train_state.prev.pt"):
        p.write_bytes(b"junk")
    r = train(dict(cfg, iterations=5), clipdir, out, timeout=300)
    assert r.returncode != 0
    assert f"{state} is unreadable" in _last_line(r) and f"Delete {out}" in _last_line(r)


def test_settings_that_cannot_run_are_one_line_at_start(clipdir, tmp_path):
    cases = {
        "batch 64 is larger than the": dict(PNG, batch=64, crop=None),
        "crop 1024x2048 is larger than the frames (540x960)": dict(PNG, crop=[1024, 2048]),
        "unknown setting 'iteratons' (did you mean 'iterations'?)": dict(PNG, iteratons=2),
        "unknown setting 'flownet.mdoe' (did you mean 'flownet.mode'?)": dict(PNG, flownet={"mdoe": "none"}),
        "setting precision: 'fp8' is not one of": dict(PNG, precision="fp8"),
    }
    for msg, cfg in cases.items():
        t0 = time.time()
        r = train(cfg, clipdir, tmp_path / "o", timeout=120)
        assert r.returncode != 0 and msg in _last_line(r), (msg, r.stderr[-1500:])
        assert time.time() - t0 < 60  # at start, not after a hang
        assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_skipped_fp16_steps_do_not_advance_the_schedule():
    """A real GradScaler skips a step with inf gradients; the lr schedule counts steps taken,
    and the Meter's skipped_steps column counts the skipped ones (read from the device)."""
    from vsr.train.config import merged
    from vsr.train.optim import make_optimizer
    from vsr.train.step import Meter, StepClock

    cfg = merged({"iterations": 10, "lr_warmup": 4, "flow_freeze_iters": 0, "log_every": 4})
    p = torch.nn.Parameter(torch.ones(4, 4))
    model = torch.nn.Module()
    model.w = p
    cpu = torch.device("cpu")
    opt, sched = make_optimizer(model, cfg, cpu)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1000)
    got, clock = [], StepClock(cpu)
    meter = Meter(cfg, cpu, 1, sched, got.extend)
    lrs = []
    for i, bad in enumerate((False, True, True, False)):
        clock.start()
        opt.zero_grad()
        scaler.scale(p.sum() * (float("inf") if bad else 1.0)).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        lrs.append(float(opt.param_groups[0]["lr"]))
        meter.add({"iter": i + 1}, p.sum().detach(), clock.end())
    meter.drain()
    assert sched.state_dict() == {"taken": 2.0, "skipped": 2.0}
    assert lrs[0] == lrs[1] == lrs[2] < lrs[3]  # held while skipped, then on
    assert scaler.get_scale() == 2.0**6  # the scaler halved its scale at each inf step
    assert torch.isfinite(p).all()  # the fused step skipped the inf gradients
    assert [r["skipped_steps"] for r in got] == [0.0, 1.0, 2.0, 2.0]
    assert all(r["compute_ms"] > 0 for r in got) and got[0]["idle_ms"] is None


def test_flownet_is_never_decayed_and_learns_slower():
    from vsr.models.vsrnet import build_vsrnet
    from vsr.train.config import merged
    from vsr.train.optim import make_optimizer

    cfg = merged({"model": {"features": [4, 2]}, "flownet": {"mode": "finetune", "width": 0.0625}})
    model = build_vsrnet(cfg)
    opt, sched = make_optimizer(model, cfg, torch.device("cpu"))
    flow = {id(p) for p in model.flownet.parameters()}
    for g in opt.param_groups:
        if any(id(p) in flow for p in g["params"]):
            assert all(id(p) in flow for p in g["params"]) and g["weight_decay"] == 0.0
            assert float(g["lr"]) == 0.0  # held still during its first iterations
        else:
            assert g["weight_decay"] in (0.0, cfg["weight_decay"])
    sched.taken.fill_(sched.freeze)
    sched.apply()
    sr_lr, flow_lr = (float(g["lr"]) for g in (opt.param_groups[0], opt.param_groups[-1]))
    assert flow_lr == pytest.approx(sr_lr * cfg["flow_lr_scale"])


def test_a_diverged_ddp_run_stops_on_every_rank_with_one_line(clipdir, tmp_path):
    cfg = dict(PNG, loader="nvvl", lr_min=1e30, lr_max=1e30, lr_warmup=0, iterations=6, log_every=2)
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vsr.train"]
    r = run(
        cmd + ["--cfg", json.dumps(cfg), "--data", str(clipdir), "--out", str(tmp_path / "o")],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert r.returncode != 0
    assert r.stderr.count("[vsr.train] error: loss is nan at iteration") == 2, r.stderr[-3000:]  # both ranks
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_ddp_run_extends_from_its_checkpoint_on_every_rank(clipdir, tmp_path):
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vsr.train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "o"
    for n in (2, 4):
        cfg = dict(PNG, loader="nvvl", iterations=n)
        r = run(
            cmd + ["--cfg", json.dumps(cfg), "--data", str(clipdir), "--out", str(out)], env=env, timeout=300
        )
        assert r.returncode == 0, r.stderr[-3000:]
    assert "continuing from" in r.stderr and "at iteration 2" in r.stderr
    assert _train_iters(out) == [1, 2, 3, 4]


class _Evil:
    """A pickle that runs a command when loaded without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(clipdir, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "ran"
    out.mkdir()
    torch.save({"iter": 2, "model": _Evil(marker)}, out / "train_state.pt")
    r = train(PNG, clipdir, out, timeout=300)
    assert r.returncode != 0 and not marker.exists()  # loaded as data only: nothing ran
    assert f"{out / 'train_state.pt'} is unreadable (UnpicklingError" in _last_line(r)


def test_a_finished_run_is_not_silently_shortened_and_new_data_starts_clean(clipdir, tmp_path):
    out = tmp_path / "run"
    assert train(dict(PNG, data_fingerprint="a"), clipdir, out, timeout=300).returncode == 0
    before = _records(out, "")
    r = train(dict(PNG, iterations=2, data_fingerprint="a"), clipdir, out, timeout=300)
    assert r.returncode != 0
    assert f"{out} already has 4 iterations, more than train.iterations 2: raise" in _last_line(r)
    assert _records(out, "") == before  # refused: nothing retrained, nothing lost
    r = train(dict(PNG, iterations=2, data_fingerprint="b"), clipdir, out, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    msg = "the training data changed since the checkpoint (data_fingerprint 'a' -> 'b'): starting"
    assert f"{msg} this run over" in r.stderr
    assert _train_iters(out) == [1, 2]


def _user_namespaces() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"]).returncode == 0


FILL = (  # fill the disk at argv[1] up to its last 64 kB
    "import os, sys; s = os.statvfs(sys.argv[1]); "
    "open(sys.argv[1] + '/fill', 'wb').write(b'0' * (s.f_bavail * s.f_frsize - 65536))"
)


@pytest.mark.skipif(not _user_namespaces(), reason="needs `unshare -rm` to mount a small tmpfs")
def test_a_full_disk_is_one_line_and_leaves_no_temporary(clipdir, tmp_path):
    """A real full disk (a 16 MB tmpfs, filled up after iteration 2): the checkpoint write of
    iteration 3 fails with one line; the checkpoint before it is intact and the run goes on
    from it once there is room."""
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir(), logs.mkdir()
    cfg = dict(PNG, checkpoint_every=1, val_every=10)
    trainer = f"{shlex.quote(PY)} -m vsr.train --data {clipdir} --out {disk}/run --cfg"
    script = f"""
        mount -t tmpfs -o size=16m tmpfs {disk} || exit 90
        {trainer} {shlex.quote(json.dumps(dict(cfg, iterations=2)))} > {logs}/1 2>&1 || exit 91
        {shlex.quote(PY)} -c {shlex.quote(FILL)} {disk}
        {trainer} {shlex.quote(json.dumps(cfg))} > {logs}/2 2>&1; echo $? > {logs}/2.rc
        ls -a {disk}/run > {logs}/2.ls
        rm {disk}/fill
        {trainer} {shlex.quote(json.dumps(cfg))} > {logs}/3 2>&1; echo $? > {logs}/3.rc
        cat {disk}/run/metrics.jsonl > {logs}/3.metrics
    """
    r = run(["unshare", "-rm", "sh", "-c", script], timeout=900)
    assert r.returncode == 0, (r.returncode, *(p.read_text()[-1500:] for p in sorted(logs.iterdir())))
    second = (logs / "2").read_text().strip().splitlines()
    assert (logs / "2.rc").read_text().strip() != "0"
    assert second[-1] == f"[vsr.train] error: no space left writing {disk}/run/train_state.pt", second[-5:]
    assert not [n for n in (logs / "2.ls").read_text().split() if n.startswith(".train_state")]
    assert (logs / "3.rc").read_text().strip() == "0", (logs / "3").read_text()[-2000:]
    assert f"continuing from {disk}/run/train_state.pt at iteration 2" in (logs / "3").read_text()
    recs = [json.loads(x) for x in (logs / "3.metrics").read_text().splitlines()]
    assert [x["iter"] for x in recs if x["kind"] == "train"] == [1, 2, 3, 4]
