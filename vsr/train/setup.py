"""Setting a training run up: processes, loaders, model, and where to continue from."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from vsr.data.nvvl import VideoDataset, VideoLoader
from vsr.data.png import PngLoader, PngSequenceDataset
from vsr.data.sampler import WindowSampler
from vsr.errors import RunError
from vsr.models.vsrnet import build_vsrnet, load_flownet_weights
from vsr.train import state as rs
from vsr.train.config import changed_settings
from vsr.train.step import DTYPES


def setup_dist(cfg):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg["gpus"] > 0 and not torch.cuda.is_available():
        raise RunError(f"train.gpus={cfg['gpus']} but no CUDA device is visible")
    device = torch.device(f"cuda:{local}") if cfg["gpus"] > 0 else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 cells run on TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    if world > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None
        )
    return rank, world, device


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
        raise RunError(f"{data}: no {split} {kind} for the {loader} loader")
    return files


def make_loader(cfg, data: Path, split: str, rank, world, device, train: bool):
    files = list_inputs(data, cfg["loader"], split)
    dtype = DTYPES[cfg["precision"]]
    stride, crop = (1, cfg["crop"]) if train else (cfg["val_stride"], None)
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
            processes=nv["processes"] if train else 0,
        )
    else:
        ds = PngSequenceDataset(files, cfg["frames"])
    H, W = ds.frame_hw
    if crop and (crop[0] > H or crop[1] > W):
        raise RunError(f"crop {crop[0]}x{crop[1]} is larger than the frames ({H}x{W}) of {data}")
    sampler = WindowSampler(
        ds.lengths, cfg["frames"], ds.frame_hw, crop, train, cfg["seed"], rank, world, stride
    )
    if train and len(sampler) < cfg["batch"]:
        raise RunError(
            f"batch {cfg['batch']} is larger than the {len(sampler)} training windows "
            f"per rank ({len(sampler.windows)} windows of {cfg['frames']} frames over {world} rank(s)): "
            "lower the batch or add data"
        )
    if cfg["loader"] == "nvvl":
        return VideoLoader(ds, cfg["batch"], sampler, dtype, cfg["nvvl"]["prefetch"], drop_last=train)
    workers = cfg["png_workers"] if train else 0
    return PngLoader(ds, cfg["batch"], sampler, device, dtype, workers, drop_last=train)


def build_model(cfg, device, world, log):
    fl = cfg["flownet"]
    if not fl["checkpoint"] and fl["mode"] in ("finetune", "frozen"):
        log.info(
            f"flownet: no checkpoint, mode {fl['mode']}: FlowNet-SD (width {fl['width']}) "
            "starts from zero flow and is trained end to end by the SR loss"
        )
    else:
        log.info(f"flownet: mode {fl['mode']}, checkpoint {fl['checkpoint']}")
    model = build_vsrnet(cfg)
    load_flownet_weights(model, cfg)
    model = model.to(device)
    if cfg["channels_last"] and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if cfg["sync_bn"] and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    use_compile = cfg["compile"] is True or (cfg["compile"] == "auto" and device.type == "cuda")
    fwd = torch.compile(ddp) if use_compile else ddp
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        f"trainable parameters: {n:,}; torch.compile {'on' if use_compile else 'off'}, "
        f"channels_last {cfg['channels_last'] and device.type == 'cuda'}"
    )
    return model, ddp, fwd


def resume_point(cfg, out: Path, rank, world, log) -> tuple[dict | None, Path | None]:
    """The checkpoint to continue from and its file ((None, None): start clean), decided once
    by rank 0; every rank then reads the file rank 0 chose."""
    decision = [None, None]  # the file to load, the reason the run cannot go on
    st = None
    if rank == 0:
        try:
            st, path = _choose_state(cfg, out, log)
            decision[0] = None if st is None else str(path)
        except RunError as e:
            decision[1] = str(e)
    if world > 1:
        dist.broadcast_object_list(decision, src=0)
    if decision[1]:
        raise RunError(decision[1])
    if decision[0] is None:
        return None, None
    return (st if rank == 0 else rs.read_state(decision[0])), Path(decision[0])


def _choose_state(cfg, out: Path, log):
    """Rank 0: the readable checkpoint this run may continue (its history trimmed to it), or
    (None, None) after discarding a run that must start over."""
    st, path = rs.load_state(out, "cpu", log)
    hist = rs.History(out)
    why = _start_over_reason(st, cfg, hist) if st is not None else None
    if why:
        log.info(why)
        st = None
    if st is None:
        rs.discard_state(out)
        return None, None
    if st["iter"] > cfg["iterations"]:
        raise RunError(
            f"{out} already has {st['iter']} iterations, more than train.iterations {cfg['iterations']}: "
            f"raise train.iterations to at least {st['iter']}, or delete {out} to train {cfg['iterations']} "
            "from scratch"
        )
    hist.truncate(st["iter"])
    return st, path


def _start_over_reason(st: dict, cfg: dict, hist: rs.History) -> str | None:
    """The one line that says why a checkpoint cannot be continued, or None."""
    changed = changed_settings(st["cfg"], cfg)
    if "data_fingerprint" in changed:
        old = st["cfg"].get("data_fingerprint", "")
        return (
            f"the training data changed since the checkpoint (data_fingerprint {old!r} -> "
            f"{cfg['data_fingerprint']!r}): starting this run over"
        )
    if changed:
        return f"settings changed since the checkpoint ({', '.join(changed)}): starting this run over"
    if not hist.covers(st["iter"]):
        return f"{hist.path} does not hold iterations 1..{st['iter']} of the checkpoint: starting over"
    return None


def take_lock(out: Path, rank, world) -> rs.RunLock | None:
    lock, err = None, [None]
    if rank == 0:
        lock = rs.RunLock(out)
        try:
            lock.acquire()
        except RunError as e:
            err = [str(e)]
    if world > 1:
        dist.broadcast_object_list(err, src=0)
    if err[0]:
        raise RunError(err[0])
    return lock
