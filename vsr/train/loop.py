"""Train VSRNet on one cell of the study (loader x precision x resolution).

Start with `torchrun [--standalone] --nproc_per_node=N -m vsr.train --cfg JSON --data DIR --out DIR`
(NCCL on GPUs, gloo on CPU) or plain `python -m vsr.train ...` for one process. Rerunning the same
command continues the run from its checkpoint with its whole history (vsr/run_state.py); raising
`iterations` extends a finished run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from vsr.errors import ConfigError, VsrError
from vsr.train import state as rs
from vsr.train.config import merged
from vsr.train.optim import load_optimizer_state, make_optimizer, optimizer_state
from vsr.train.setup import build_model, make_loader, resume_point, setup_dist, take_lock
from vsr.train.step import Meter, autocast_for, step_flop, sync, train_step
from vsr.train.sysmon import SysMon
from vsr.train.validate import validate


def run(cfg: dict, data: Path, out: Path) -> dict:
    cfg = merged(cfg)
    rank, world, device = setup_dist(cfg)
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)
    out.mkdir(parents=True, exist_ok=True)
    lock = take_lock(out, rank, world)
    try:
        return _run(cfg, data, out, rank, world, device, log)
    finally:
        if lock:
            lock.release()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg, data, out, rank, world, device, log) -> dict:
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    random.seed(cfg["seed"])
    train_loader = make_loader(cfg, data, "train", rank, world, device, True)
    val_loader = make_loader(cfg, data, "val", rank, world, device, False)
    crop = train_loader.sampler.crop
    log(
        f"[vsr.train] {cfg['loader']}/{cfg['precision']} {cfg['res']} on {device} x{world}: frames "
        f"{train_loader.sampler.frame_hw} -> training crop {crop} (multiple of 64), "
        f"batch {cfg['batch']}/rank, "
        f"{len(train_loader.sampler.windows)} train windows, backend "
        f"{getattr(train_loader.dataset, 'backend_name', 'png')}"
    )
    model, ddp, fwd = build_model(cfg, device, world, log)
    opt, sched = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg["precision"] == "fp16" and device.type == "cuda")
    autocast = autocast_for(cfg, device)
    if device.type == "cpu" and cfg["precision"] != "fp32":
        log(
            f"[vsr.train] {cfg['precision']} on CPU: the loader emits {cfg['precision']} tensors, "
            "compute stays fp32"
        )

    st = resume_point(cfg, out, rank, world, log)
    it, epoch, pos, mon_summary = 0, 0, 0, None
    if st is not None:
        model.load_state_dict(st["model"])
        load_optimizer_state(opt, st["optimizer"])
        sched.load_state_dict(st["schedule"])
        scaler.load_state_dict(st["scaler"])
        it, epoch, pos, mon_summary = st["iter"], st["epoch"], st["pos"], st.get("sysmon")
        rs.set_rng_state(st["rng"][rank] if rank < len(st["rng"]) else st["rng"][0])
        log(
            f"[vsr.train] continuing from {out / 'train_state.pt'} at iteration {it} "
            f"(epoch {epoch}, batch {pos})"
        )
    hist = rs.History(out)
    writer = None
    if rank == 0:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=it + 1 if it else None)

    def emit(recs):
        if rank == 0:
            hist.append(recs)
            for r in recs:
                for k in ("loss", "lr", "data_ms", "step_ms", "images_per_s", "loss_scale"):
                    if r.get(k) is not None:
                        writer.add_scalar(f"train/{k}", r[k], r["iter"])

    meter = Meter(cfg, device, world, scaler, sched, emit)

    def save(final_summary=None):
        meter.drain()
        rngs = [None] * world
        if world > 1:
            dist.all_gather_object(rngs, rs.rng_state())
        else:
            rngs = [rs.rng_state()]
        if rank == 0:
            rs.save_state(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer_state(opt),
                    "schedule": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                    "iter": it,
                    "epoch": epoch,
                    "pos": pos,
                    "rng": rngs,
                    "cfg": cfg,
                    "sysmon": final_summary,
                },
                out,
            )

    def run_validation():
        meter.drain()
        v = validate(ddp.module if world > 1 else ddp, val_loader, cfg, device, world, autocast)
        emit_val = {"kind": "val", "iter": it, **v}
        if rank == 0:
            hist.append([emit_val])
            for k, x in v.items():
                if isinstance(x, (int, float)):
                    writer.add_scalar(f"val/{k}", x, it)
            bic = next(x for k, x in v.items() if k.startswith("bicubic/psnr"))
            log(
                f"[vsr.train] iter {it}: val over {v['clips']} clips: model "
                f"{next(x for k, x in v.items() if k.startswith('model/psnr')):.2f} dB, "
                f"bicubic {bic:.2f} dB, "
                f"gain {v['psnr_gain_over_bicubic']:+.2f} dB"
            )
            if bic > 40:
                log(
                    f"[vsr.train] warning: bicubic already reaches {bic:.1f} dB on the val clips: they are "
                    "too smooth to measure super-resolution"
                )

    mon = SysMon(gpu_index=device.index if device.type == "cuda" else None)
    mon_started = False
    from tqdm import tqdm

    bar = tqdm(
        total=cfg["iterations"],
        initial=it,
        desc=f"train {cfg['loader']}_{cfg['precision']}",
        disable=rank != 0,
        unit="it",
    )
    ddp.train()
    images = cfg["batch"] * world
    t_last = time.perf_counter()
    t_steady, it_steady, paused = None, it, 0.0
    try:
        while it < cfg["iterations"]:
            train_loader.sampler.set_epoch(epoch, pos * cfg["batch"])
            batches = iter(train_loader)
            while it < cfg["iterations"]:
                sample = (it + 1) % cfg["data_time_every"] == 0
                t0 = sync(device) if sample else None
                hr = next(batches, None)
                if hr is None:
                    break
                data_ms = (sync(device) - t0) * 1e3 if sample else None
                loss, pred, target = train_step(
                    fwd, hr, opt, sched, scaler, autocast, cfg["flownet"]["flow_from"]
                )
                it, pos = it + 1, pos + 1
                now = time.perf_counter()
                rec = {
                    "kind": "train",
                    "iter": it,
                    "epoch": epoch,
                    "data_ms": data_ms,
                    "step_ms": (now - t_last) * 1e3,
                    "images_per_s": images / max(now - t_last, 1e-9),
                }
                t_last = now
                meter.add(rec, loss)
                bar.update(1)
                if it == cfg["warmup_iters"] or (it > cfg["warmup_iters"] and t_steady is None):
                    t_steady, it_steady = sync(device), it
                    if rank == 0 and not mon_started:
                        mon.start()
                        mon_started = True
                p0 = time.perf_counter()  # images, validation, checkpoints: not training time
                if writer and (it % cfg["log_images_every"] == 0 or it == 1):
                    log_images(writer, hr, pred, target, it)
                if it % cfg["val_every"] == 0 or it == cfg["iterations"]:
                    run_validation()
                if it % cfg["checkpoint_every"] == 0 and it != cfg["iterations"]:
                    save()
                if time.perf_counter() - p0 > 1e-3:
                    t_last = time.perf_counter()
                    paused += t_last - p0 if t_steady is not None else 0.0
            else:
                break
            epoch, pos = epoch + 1, 0
        meter.drain()
    finally:
        bar.close()  # so that a stop message is the last line
    t_end = sync(device)
    if mon_started:
        mon_summary = mon.stop()
        steady_its = it - it_steady
        mon_summary["images_per_s"] = (
            steady_its * images / max(t_end - t_steady - paused, 1e-9) if steady_its else None
        )
    mon_summary = mon_summary or {"samples": 0}
    mon_summary.update(
        {
            "world_size": world,
            "device": device_name(device),
            "warmup_iters": cfg["warmup_iters"],
            "backend": getattr(train_loader.dataset, "backend_name", "png"),
            "crop_run": list(crop),
            "step_tflop": step_flop(cfg, device, cfg["batch"], crop) / 1e12,
            "skipped_steps": sched.state_dict()["skipped"],
        }
    )
    save(mon_summary)
    if rank == 0:
        publish(out, model, cfg, it, mon_summary, hist)
        writer.close()
    for ld in (train_loader, val_loader):
        for part in (ld, ld.dataset):
            if hasattr(part, "close"):
                part.close()
    if world > 1:
        dist.barrier()
    return mon_summary


def log_images(writer, hr, pred, target, it):
    from vsr.metrics import bicubic_upscale
    from vsr.models.vsrnet import SCALE

    c = hr.shape[1] // 2
    lr = torch.nn.functional.avg_pool2d(hr[:1, c].float(), SCALE)
    writer.add_image("sample/bicubic", bicubic_upscale(lr, hr.shape[-2:])[0], it)
    writer.add_image("sample/prediction", pred[0].detach().float().clamp(0, 1), it)
    writer.add_image("sample/target", target[0].float(), it)


def publish(out: Path, model, cfg, it, summary, hist) -> None:
    """The workflow's outputs, each written whole: sysmon.json, final.pt, metrics.jsonl."""
    tmp = out / ".sysmon.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / "sysmon.json")
    rs.atomic_save({"model": model.state_dict(), "cfg": cfg, "iter": it}, out / "final.pt")
    hist.publish(out / "metrics.jsonl")


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _read_cfg(arg: str) -> dict:
    """--cfg JSON or @file.json."""
    try:
        text = Path(arg[1:]).read_text() if arg.startswith("@") else arg
        return json.loads(text)
    except OSError as e:
        raise ConfigError(f"--cfg {arg}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--cfg: not valid JSON ({e})") from None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cfg", required=True, help="JSON object of training settings (or @file)")
    ap.add_argument("--data", required=True, type=Path, help="data/{res} folder")
    ap.add_argument("--out", required=True, type=Path, help="runs/{res}/{loader}_{precision}")
    a = ap.parse_args(argv)
    try:
        run(_read_cfg(a.cfg), a.data, a.out)
    except (VsrError, ValueError) as e:  # bad input or a run that cannot go on: one line, no traceback
        sys.exit(f"[vsr.train] error: {e}")


if __name__ == "__main__":
    main()
