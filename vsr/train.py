"""Train VSRNet on one cell of the study (loader x precision x resolution).

Start with `torchrun [--standalone] --nproc_per_node=N -m vsr.train --cfg JSON --data DIR --out DIR`
(NCCL on GPUs, gloo on CPU) or plain `python -m vsr.train ...` for one process. Rerunning the same
command resumes from `OUT/train_state.pt`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from vsr.data.nvvl import VideoDataset, VideoLoader
from vsr.data.png import PngLoader, PngSequenceDataset
from vsr.data.sampler import WindowSampler
from vsr.media.io import MediaError
from vsr.metrics import bicubic_upscale, metric_name, psnr, rgb_to_studio_y, ssim, studio_y
from vsr.models.flownet_sd import CheckpointError
from vsr.models.vsrnet import SCALE, build_vsrnet, degrade, sr_step
from vsr.sysmon import SysMon

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

DEFAULTS = {
    "loader": "nvvl",
    "precision": "fp32",
    "res": "540p",
    "crop": None,
    "batch": 7,
    "frames": 3,
    "iterations": 100,
    "val_every": 50,
    "checkpoint_every": 50,
    "lr_min": 1e-4,
    "lr_max": 1e-3,
    "weight_decay": 4e-4,
    "half_cycle_epochs": 2,
    "seed": 0,
    "png_workers": 2,
    "val_stride": 1,
    "val_crop": 4,
    "sync_bn": False,
    "log_images_every": 50,
    "warmup_iters": 2,
    "gpus": 0,
    "model": {"features": [64, 32]},
    "flownet": {"mode": "finetune", "checkpoint": None, "width": 1.0, "flow_from": "lr"},
    "nvvl": {"backend": "auto", "decoders_per_gpu": 7, "prefetch": 2, "cpu_threads": 4},
}


class TrainError(SystemExit):
    """Stops the run with a one-line message."""


def merged(cfg: dict) -> dict:
    out = json.loads(json.dumps(DEFAULTS))
    for k, v in cfg.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def setup_dist(cfg):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg["gpus"] > 0 and torch.cuda.is_available()
    if cfg["gpus"] > 0 and not torch.cuda.is_available():
        raise TrainError(f"train.gpus={cfg['gpus']} but no CUDA device is visible")
    device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    return rank, world, device


def sync(device):
    """Wait for the training stream (all compute, and the batch it was handed), not for the
    whole device: the loader's decode/convert of later batches runs on its own streams."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    return time.perf_counter()


def list_inputs(data: Path, loader: str, split: str) -> list[Path]:
    """Scene mp4s (nvvl) or frame folders (png) of a split; hidden temp outputs are skipped."""
    if loader == "nvvl":
        files = sorted((data / "scenes" / split).glob("[!.]*.mp4"))
    else:
        d = data / "frames" / split
        files = (
            sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []
        )
    if not files:
        kind = "scene .mp4 files" if loader == "nvvl" else "frame folders"
        raise TrainError(f"{data}: no {split} {kind} for the {loader} loader")
    return files


def make_loader(cfg, data: Path, split: str, rank, world, device, train: bool):
    files = list_inputs(data, cfg["loader"], split)
    dtype = DTYPES[cfg["precision"]]
    stride = 1 if train else cfg["val_stride"]
    batch = cfg["batch"] if train else max(1, cfg["batch"])
    crop = cfg["crop"] if train else None
    if cfg["loader"] == "nvvl":
        nv = cfg["nvvl"]
        ds = VideoDataset(
            files,
            cfg["frames"],
            device,
            nv["backend"],
            index_cache_dir=data / ".index",
            decoders=nv["decoders_per_gpu"],
            cpu_threads=nv["cpu_threads"],
        )
        sampler = WindowSampler(
            ds.lengths, cfg["frames"], ds.frame_hw, crop, train, cfg["seed"], rank, world, stride
        )
        return VideoLoader(ds, batch, sampler, dtype, nv["prefetch"], drop_last=train)
    ds = PngSequenceDataset(files, cfg["frames"])
    sampler = WindowSampler(
        ds.lengths, cfg["frames"], ds.frame_hw, crop, train, cfg["seed"], rank, world, stride
    )
    return PngLoader(ds, batch, sampler, device, dtype, cfg["png_workers"] if train else 0, drop_last=train)


def autocast(cfg, device):
    """Mixed precision on CUDA. On CPU, fp16/bf16 change only the loader's output dtype: CPU
    autocast to fp16 runs ~25x slower than fp32 (measured), so compute stays fp32 there."""
    if cfg["precision"] == "fp32" or device.type == "cpu":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[cfg["precision"]])


@torch.no_grad()
def validate(model, loader, cfg, device, world) -> dict:
    """Mean over every val window of all ranks: model, bicubic and bilinear-input PSNR/SSIM."""
    net = model.module if isinstance(model, DDP) else model
    net.eval()
    crop = cfg["val_crop"]
    sums = torch.zeros(7, dtype=torch.float64, device=device)
    for hr in loader:
        with autocast(cfg, device):
            pred, _, _ = sr_step(net, hr, cfg["flownet"]["flow_from"])
        c = hr.shape[1] // 2
        ref = rgb_to_studio_y(hr[:, c])
        lr = F.avg_pool2d(hr[:, c].float(), SCALE)
        bic = rgb_to_studio_y(bicubic_upscale(lr, hr.shape[-2:]))
        bil = rgb_to_studio_y(degrade(hr[:, c : c + 1])[:, 0])
        p = studio_y(pred)
        sums += torch.stack(
            [
                psnr(p, ref, crop).sum(),
                ssim(p, ref, crop).sum(),
                psnr(bic, ref, crop).sum(),
                ssim(bic, ref, crop).sum(),
                psnr(bil, ref, crop).sum(),
                ssim(bil, ref, crop).sum(),
                torch.tensor(float(hr.shape[0]), dtype=torch.float64, device=device),
            ]
        )
    if world > 1:
        dist.all_reduce(sums)
    net.train()
    n = max(sums[6].item(), 1.0)
    s = (sums[:6] / n).tolist()
    names = ["psnr", "ssim"]
    out = {"count": int(sums[6].item())}
    for i, who in enumerate(("model", "bicubic", "bilinear")):
        for j, kind in enumerate(names):
            out[f"{who}/{metric_name(kind, SCALE, crop)}"] = s[2 * i + j]
    out["psnr_gain_over_bicubic"] = s[0] - s[2]
    return out


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state():
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def run(cfg: dict, data: Path, out: Path) -> dict:
    cfg = merged(cfg)
    rank, world, device = setup_dist(cfg)
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    random.seed(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)

    train_loader = make_loader(cfg, data, "train", rank, world, device, True)
    val_loader = make_loader(cfg, data, "val", rank, world, device, False)
    crop = train_loader.sampler.crop
    log(
        f"[vsr.train] {cfg['loader']}/{cfg['precision']} {cfg['res']} on {device} x{world}: "
        f"frames {train_loader.sampler.frame_hw} -> training crop {crop} (multiple of 64), "
        f"batch {cfg['batch']}/rank, {len(train_loader.sampler.windows)} train windows"
    )
    if cfg["loader"] == "nvvl":
        log(f"[vsr.train] nvvl backend: {train_loader.dataset.backend_name}")
    fl = cfg["flownet"]
    if not fl["checkpoint"] and fl["mode"] != "none":
        log(
            f"[vsr.train] flownet: no checkpoint, mode {fl['mode']}: FlowNet-SD (width "
            f"{fl['width']}) starts from zero flow and is trained end to end by the SR loss"
        )
    else:
        log(f"[vsr.train] flownet: mode {fl['mode']}, checkpoint {fl['checkpoint']}")

    model = build_vsrnet(cfg).to(device)
    if cfg["sync_bn"] and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    params = [p for p in model.parameters() if p.requires_grad]
    log(
        f"[vsr.train] trainable parameters: {sum(p.numel() for p in params):,} "
        f"(SR net {sum(p.numel() for p in model.sr_parameters()):,})"
    )
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    opt = torch.optim.Adam(params, lr=cfg["lr_min"], weight_decay=cfg["weight_decay"])
    per_epoch = max(1, len(train_loader.sampler) // cfg["batch"])
    sched = torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=cfg["lr_min"],
        max_lr=cfg["lr_max"],
        step_size_up=max(1, cfg["half_cycle_epochs"] * per_epoch),
        mode="triangular",
        cycle_momentum=False,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg["precision"] == "fp16" and device.type == "cuda")
    if device.type == "cpu" and cfg["precision"] != "fp32":
        log(
            f"[vsr.train] {cfg['precision']} on CPU: the loader emits {cfg['precision']} "
            "tensors, compute stays fp32 (no fast half-precision kernels on this CPU)"
        )

    state_path, partial = out / "train_state.pt", out / "metrics.partial.jsonl"
    it, epoch, pos = 0, 0, 0
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        scaler.load_state_dict(st["scaler"])
        it, epoch, pos = st["iter"], st["epoch"], st["pos"]
        set_rng_state(st["rng"][rank] if rank < len(st["rng"]) else st["rng"][0])
        log(f"[vsr.train] resumed from {state_path} at iteration {it} (epoch {epoch}, batch {pos})")
    if rank == 0:  # keep the metrics of the iterations the checkpoint covers
        lines = partial.read_text().splitlines() if partial.exists() else []
        partial.write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["iter"] <= it))
    writer = None
    if rank == 0:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=it + 1 if it else None)

    def emit(rec):
        if rank == 0:
            with open(partial, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def save():
        rngs = [None] * world
        if world > 1:
            dist.all_gather_object(rngs, rng_state())
        else:
            rngs = [rng_state()]
        if rank == 0:
            atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                    "iter": it,
                    "epoch": epoch,
                    "pos": pos,
                    "rng": rngs,
                    "cfg": cfg,
                },
                state_path,
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
    while it < cfg["iterations"]:
        train_loader.sampler.set_epoch(epoch, pos * cfg["batch"])
        batches = iter(train_loader)
        while it < cfg["iterations"]:
            t0 = sync(device)
            hr = next(batches, None)
            t1 = sync(device)
            if hr is None:
                break
            with autocast(cfg, device):
                pred, target, _ = sr_step(ddp, hr, fl["flow_from"])
            loss = F.mse_loss(pred.float(), target)
            if not torch.isfinite(loss):
                bar.close()  # so that the message is the last line
                raise TrainError(
                    f"[vsr.train] loss is {loss.item()} at iteration {it + 1} ({cfg['precision']}): stopping"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            t2 = sync(device)
            it, pos = it + 1, pos + 1
            bar.update(1)
            if it >= cfg["warmup_iters"] and not mon_started and rank == 0:
                mon.start()
                mon_started = True
            rec = {
                "kind": "train",
                "iter": it,
                "epoch": epoch,
                "loss": loss.item(),
                "lr": sched.get_last_lr()[0],
                "data_ms": (t1 - t0) * 1e3,
                "step_ms": (t2 - t1) * 1e3,
                "images_per_s": hr.shape[0] * world / max(t2 - t0, 1e-9),
                "loss_scale": scaler.get_scale() if scaler.is_enabled() else 1.0,
            }
            emit(rec)
            if writer:
                for k in ("loss", "lr", "data_ms", "step_ms", "images_per_s", "loss_scale"):
                    writer.add_scalar(f"train/{k}", rec[k], it)
                if it % cfg["log_images_every"] == 0 or it == 1:
                    c = hr.shape[1] // 2
                    lr = F.avg_pool2d(hr[:1, c].float(), SCALE)
                    writer.add_image("sample/bicubic", bicubic_upscale(lr, hr.shape[-2:])[0], it)
                    writer.add_image("sample/prediction", pred[0].detach().float().clamp(0, 1), it)
                    writer.add_image("sample/target", target[0].float(), it)
            if it % cfg["val_every"] == 0 or it == cfg["iterations"]:
                v = validate(ddp, val_loader, cfg, device, world)
                emit({"kind": "val", "iter": it, **v})
                if writer:
                    for k, x in v.items():
                        writer.add_scalar(f"val/{k}", x, it)
                log(
                    f"[vsr.train] iter {it}: val "
                    + ", ".join(f"{k} {x:.4f}" for k, x in v.items() if "psnr" in k)
                )
            if it % cfg["checkpoint_every"] == 0 or it == cfg["iterations"]:
                save()
        else:
            break
        epoch, pos = epoch + 1, 0
    bar.close()
    summary = mon.stop() if mon_started else {"samples": 0}
    if rank == 0:
        summary.update(
            {
                "world_size": world,
                "device": device_name(device),
                "warmup_iters": cfg["warmup_iters"],
                "backend": getattr(train_loader.dataset, "backend_name", "png"),
            }
        )
        (out / "sysmon.json.tmp").write_text(json.dumps(summary, indent=1))
        os.replace(out / "sysmon.json.tmp", out / "sysmon.json")
        atomic_save({"model": model.state_dict(), "cfg": cfg, "iter": it}, out / "final.pt")
        os.replace(partial, out / "metrics.jsonl")
        writer.close()
    for ld in (train_loader, val_loader):
        if hasattr(ld.dataset, "close"):
            ld.dataset.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cfg", required=True, help="JSON object of training settings (or @file)")
    ap.add_argument("--data", required=True, type=Path, help="data/{res} folder")
    ap.add_argument("--out", required=True, type=Path, help="runs/{res}/{loader}_{precision}")
    a = ap.parse_args(argv)
    text = Path(a.cfg[1:]).read_text() if a.cfg.startswith("@") else a.cfg
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise TrainError(f"--cfg: not valid JSON ({e})") from None
    try:
        run(cfg, a.data, a.out)
    except (MediaError, CheckpointError, ValueError) as e:  # bad input: one line, no traceback
        sys.exit(f"[vsr.train] error: {e}")


if __name__ == "__main__":
    main()
