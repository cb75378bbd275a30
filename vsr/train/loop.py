"""Train VSRNet on one cell of the study (loader x precision x resolution).

Start with `torchrun [--standalone] --nproc_per_node=N -m vsr.train --cfg JSON --data DIR --out DIR`
(NCCL on GPUs, gloo on CPU) or plain `python -m vsr.train ...` for one process. Rerunning the same
command continues the run from its checkpoint with its whole history (vsr/train/state.py); raising
`iterations` extends a finished run.

`Trainer` holds one run: `__init__` builds it (loaders, model, optimiser, restored state),
`fit()` runs the loop: fetch a batch, one step, then validation / checkpoints / images between
steps (paused time, not training time), and at the end publishes the workflow's outputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import vsr.log
from vsr.errors import ConfigError, VsrError
from vsr.fs import atomic_path
from vsr.train import state as rs
from vsr.train.config import TrainConfig, merged
from vsr.train.optim import load_optimizer_state, make_optimizer, optimizer_state
from vsr.train.setup import build_model, make_loader, resume_point, setup_dist, take_lock
from vsr.train.step import Meter, StepClock, autocast_for, step_flop, sync, train_step
from vsr.train.sysmon import SysMon
from vsr.train.validate import validate

SCALARS = ("loss", "lr", "data_ms", "wait_ms", "step_ms", "compute_ms", "idle_ms", "images_per_s")


def run(cfg: dict, data: Path, out: Path) -> dict:
    cfg = merged(cfg)
    rank, world, device = setup_dist(cfg)
    out.mkdir(parents=True, exist_ok=True)
    lock = take_lock(out, rank, world)
    try:
        return Trainer(cfg, data, out, rank, world, device).fit()
    finally:
        if lock:
            lock.release()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class Trainer:
    """One training run of one cell, on this rank."""

    def __init__(self, cfg: dict, data: Path, out: Path, rank: int, world: int, device):
        self.cfg, self.c = cfg, TrainConfig.of(cfg)
        self.out, self.rank, self.world, self.device = out, rank, world, device
        self.log = vsr.log.get("vsr.train")
        if rank != 0:
            self.log.setLevel(logging.WARNING)  # rank 0 speaks for the run
        seed_everything(self.c.seed)
        self.train_loader = make_loader(cfg, data, "train", rank, world, device, True)
        self.val_loader = make_loader(cfg, data, "val", rank, world, device, False)
        self._say_setup()
        self.model, self.ddp, self.fwd = build_model(cfg, device, world, self.log)
        self.opt, self.sched = make_optimizer(self.model, cfg, device)
        fp16 = self.c.precision == "fp16" and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        self.autocast = autocast_for(cfg, device)
        self.it, self.epoch, self.pos, self.mon_summary = 0, 0, 0, None
        self._restore()
        self.hist = rs.History(out)
        self.writer = self._writer() if rank == 0 else None
        self.meter = Meter(cfg, device, world, self.sched, self.emit)
        self.clock = StepClock(device)
        self.mon = SysMon(gpu_index=device.index if device.type == "cuda" else None)
        self.images = self.c.batch * world
        self.t_last, self.t_steady, self.it_steady, self.paused = time.perf_counter(), None, self.it, 0.0

    def _say_setup(self) -> None:
        c, ts = self.c, self.train_loader.sampler
        self.log.info(
            f"{c.loader}/{c.precision} {c.res} on {self.device} x{self.world}: frames {ts.frame_hw} -> "
            f"training crop {ts.crop} (multiple of 64), batch {c.batch}/rank, {len(ts.windows)} train "
            f"windows, backend {getattr(self.train_loader.dataset, 'backend_name', 'png')}"
        )
        if self.device.type == "cpu" and c.precision != "fp32":
            self.log.info(f"{c.precision} on CPU: the loader emits {c.precision} tensors, compute stays fp32")

    def _restore(self) -> None:
        st, path = resume_point(self.cfg, self.out, self.rank, self.world, self.log)
        if st is None:
            return
        self.model.load_state_dict(st["model"])
        load_optimizer_state(self.opt, st["optimizer"])
        self.sched.load_state_dict(st["schedule"])
        self.scaler.load_state_dict(st["scaler"])
        self.it, self.epoch, self.pos, self.mon_summary = st["iter"], st["epoch"], st["pos"], st.get("sysmon")
        rs.set_rng_state(st["rng"][self.rank] if self.rank < len(st["rng"]) else st["rng"][0])
        self.log.info(f"continuing from {path} at iteration {self.it} (epoch {self.epoch}, batch {self.pos})")

    def _writer(self):
        from tensorboardX import SummaryWriter

        return SummaryWriter(str(self.out / "tb"), purge_step=self.it + 1 if self.it else None)

    def emit(self, recs: list[dict]) -> None:
        """Train records whose device values have arrived: history and TensorBoard (rank 0)."""
        if self.rank != 0:
            return
        self.hist.append(recs)
        for r in recs:
            for k in SCALARS:
                if r.get(k) is not None:
                    self.writer.add_scalar(f"train/{k}", r[k], r["iter"])

    def fit(self) -> dict:
        from tqdm import tqdm

        c = self.c
        desc = f"train {c.loader}_{c.precision}"
        bar = tqdm(total=c.iterations, initial=self.it, desc=desc, disable=self.rank != 0, unit="it")
        self.ddp.train()
        try:
            while self.it < c.iterations:
                self.train_loader.sampler.set_epoch(self.epoch, self.pos * c.batch)
                if self._epoch(bar):
                    break
                self.epoch, self.pos = self.epoch + 1, 0
            t_end = sync(self.device)  # the steady state ends with the last step's work
            self.meter.drain()
        finally:
            bar.close()  # so that a stop message is the last line
        return self._finish(t_end)

    def _epoch(self, bar) -> bool:
        """Steps until the loader runs dry (False) or the run has all its iterations (True)."""
        batches = iter(self.train_loader)
        while self.it < self.c.iterations:
            hr, rec = self._next(batches)
            if hr is None:
                return False
            pred, target = self._step(hr, rec)
            bar.update(1)
            self._steady_check()
            self._between_steps(hr, pred, target)
        return True

    def _next(self, batches):
        """The next batch and its host-side timing: the unsynchronised wait in next() on every
        iteration, and every data_time_every-th iteration the seed's synchronised data time."""
        sample = (self.it + 1) % self.c.data_time_every == 0
        t0 = sync(self.device) if sample else None
        w0 = time.perf_counter()
        hr = next(batches, None)
        w1 = time.perf_counter()
        data_ms = (sync(self.device) - t0) * 1e3 if sample else None
        return hr, {"data_ms": data_ms, "wait_ms": (w1 - w0) * 1e3}

    def _step(self, hr, rec: dict):
        self.clock.start()
        loss, pred, target = train_step(
            self.fwd, hr, self.opt, self.sched, self.scaler, self.autocast, self.c.flownet.flow_from
        )
        stamp = self.clock.end()
        self.it, self.pos = self.it + 1, self.pos + 1
        now = time.perf_counter()
        dt = max(now - self.t_last, 1e-9)
        rec = {"kind": "train", "iter": self.it, "epoch": self.epoch, **rec}
        rec.update(step_ms=dt * 1e3, images_per_s=self.images / dt)
        self.t_last = now
        self.meter.add(rec, loss, stamp)
        return pred, target

    def _steady_check(self) -> None:
        """After warmup_iters: the steady state (images/s, system sampling) starts here."""
        if self.t_steady is not None or self.it < self.c.warmup_iters:
            return
        self.t_steady, self.it_steady = sync(self.device), self.it
        if self.rank == 0:
            self.mon.start()

    def _between_steps(self, hr, pred, target) -> None:
        """Images, validation, checkpoints: paused time, kept out of the speed and idle figures.
        A pause starts once the device has done the steps queued so far (a sync: pauses wait for
        the device anyway), so that the host's pause and the device's excluded gap coincide."""
        c, it = self.c, self.it
        images = self.writer is not None and (it % c.log_images_every == 0 or it == 1)
        val = it % c.val_every == 0 or it == c.iterations
        ckpt = it % c.checkpoint_every == 0 and it != c.iterations
        if not (images or val or ckpt):
            return
        p0 = sync(self.device)
        self.clock.pause()
        if images:
            log_images(self.writer, hr, pred, target, it)
        if val:
            self._validate()
        if ckpt:
            self._save()
        self.clock.resume()
        self.t_last = time.perf_counter()
        self.paused += self.t_last - p0 if self.t_steady is not None else 0.0

    def _validate(self) -> None:
        self.meter.drain()
        net = self.ddp.module if self.world > 1 else self.ddp
        v = validate(net, self.val_loader, self.cfg, self.device, self.world, self.autocast)
        if self.rank != 0:
            return
        self.hist.append([{"kind": "val", "iter": self.it, **v}])
        for k, x in v.items():
            if isinstance(x, (int, float)):
                self.writer.add_scalar(f"val/{k}", x, self.it)
        model = next(x for k, x in v.items() if k.startswith("model/psnr"))
        bic = next(x for k, x in v.items() if k.startswith("bicubic/psnr"))
        self.log.info(
            f"iter {self.it}: val over {v['clips']} clips: model {model:.2f} dB, bicubic {bic:.2f} dB, "
            f"gain {v['psnr_gain_over_bicubic']:+.2f} dB"
        )
        if bic > 40:
            self.log.warning(
                f"warning: bicubic already reaches {bic:.1f} dB on the val clips: they are too smooth "
                "to measure super-resolution"
            )

    def _save(self, final_summary=None) -> None:
        self.meter.drain()
        rngs = [None] * self.world
        if self.world > 1:
            dist.all_gather_object(rngs, rs.rng_state())
        else:
            rngs = [rs.rng_state()]
        if self.rank != 0:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": optimizer_state(self.opt),
            "schedule": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iter": self.it,
            "epoch": self.epoch,
            "pos": self.pos,
            "rng": rngs,
            "cfg": self.cfg,
            "sysmon": final_summary,
        }
        rs.save_state(state, self.out)

    def _finish(self, t_end: float) -> dict:
        summary = self._summary(t_end)
        self._save(summary)
        if self.rank == 0:
            publish(self.out, self.model, self.cfg, self.it, summary, self.hist)
            self.writer.close()
        for ld in (self.train_loader, self.val_loader):
            for part in (ld, ld.dataset):
                if hasattr(part, "close"):
                    part.close()
        if self.world > 1:
            dist.barrier()
        return summary

    def _summary(self, t_end: float) -> dict:
        """sysmon.json: system samples and the steady-state speed (paused time left out)."""
        s = self.mon_summary
        if self.mon.started:
            s = self.mon.stop()
            steady_its = self.it - self.it_steady
            wall = max(t_end - self.t_steady - self.paused, 1e-9)
            s["images_per_s"] = steady_its * self.images / wall if steady_its else None
            s["steady_iters"] = [self.it_steady, self.it]  # the iterations (from, to] these figures cover
        s = s or {"samples": 0}
        crop = self.train_loader.sampler.crop
        s.update(
            world_size=self.world,
            device=device_name(self.device),
            warmup_iters=self.c.warmup_iters,
            backend=getattr(self.train_loader.dataset, "backend_name", "png"),
            crop_run=list(crop),
            step_tflop=step_flop(self.cfg, self.device, self.c.batch, crop) / 1e12,
            skipped_steps=self.sched.state_dict()["skipped"],
            step_timing="cuda events" if self.device.type == "cuda" else "host timestamps",
        )
        return s


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
    with atomic_path(out / "sysmon.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
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
        vsr.log.get("vsr.train").error(f"error: {e}")
        sys.exit(1)
    except OSError as e:  # a folder or file the run cannot create or write (read-only, not a folder)
        vsr.log.get("vsr.train").error(f"error: {e.filename or a.out}: {e.strerror or e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
