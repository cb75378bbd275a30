"""One training step and the metrics that leave the device without stalling it.

The step launches work and returns: no `.item()`, no isfinite check on the host, no timing
syncs (`StepClock` records CUDA events). GradScaler finds non-finite fp16 gradients on the
device (fused AdamW skips the update), and `Meter` reads the losses and step timings back in
blocks of `log_every` iterations through pinned memory one block late, so a NaN loss stops the
run within 2 x log_every iterations, on every rank at once (the block is all-reduced), with one
line.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vsr.errors import NonFiniteLoss
from vsr.models.vsrnet import sr_step

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_for(cfg, device):
    """Mixed precision on CUDA. On CPU, fp16/bf16 change only the loader's output dtype: CPU
    autocast to fp16 runs ~25x slower than fp32 (measured), so compute stays fp32 there."""
    if cfg["precision"] == "fp32" or device.type == "cpu":
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=DTYPES[cfg["precision"]])


def train_step(fwd, hr, opt, sched, scaler, autocast, flow_from: str):
    """Forward, backward, update. Returns (loss, prediction, target) as device tensors."""
    with autocast():
        pred, target, _ = sr_step(fwd, hr, flow_from)
    loss = F.mse_loss(pred.float(), target)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    sched.step()
    return loss.detach(), pred, target


def sync(device) -> float:
    """Wait for the training stream (not the loader's streams) and return the time."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    return time.perf_counter()


class StepClock:
    """The boundaries of each step's device work. On CUDA: events recorded on the training
    stream (no waiting; they are read back with the losses, a block late). On CPU, where ops run
    synchronously, host timestamps of the same boundaries.

    A stamp is (idle_from, gap, start, end): compute = start -> end; idle = idle_from -> start
    (idle_from: the end of the previous step) less the gap of a pause between them (validation,
    checkpoint, images: pause() -> resume()), so idle is the time the device waited for the host
    and the loader, the host's work before a pause included, and Compute + Idle add up to the
    run's wall time less its pauses."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.idle_from = None  # None before a run's first step: no idle to count
        self.begin = self.paused_at = self.gap = None

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    def start(self) -> None:
        self.begin = self._mark()

    def end(self) -> tuple:
        stamp = (self.idle_from, self.gap, self.begin, self._mark())
        self.idle_from, self.gap = stamp[3], None
        return stamp

    def pause(self) -> None:
        self.paused_at = self._mark()

    def resume(self) -> None:
        """After a pause: it is left out of the next step's idle (before any step: idle from now)."""
        mark = self._mark()
        if self.idle_from is None or self.paused_at is None:
            self.idle_from = mark
        else:
            self.gap = (self.paused_at, mark)
        self.paused_at = None

    @staticmethod
    def read(stamp) -> tuple[float, float | None]:
        """(compute ms, idle ms or None) of a finished stamp."""
        idle_from, gap, begin, end = stamp

        def ms(a, b) -> float:
            return (b - a) * 1e3 if isinstance(a, float) else a.elapsed_time(b)

        if idle_from is None:
            return ms(begin, end), None
        return ms(begin, end), ms(idle_from, begin) - (ms(*gap) if gap else 0.0)


class Meter:
    """Per-iteration records whose device values (loss, lr, steps skipped by the fp16 scaler,
    step timing) arrive a block late."""

    COLS = ("loss", "lr", "skipped_steps")

    def __init__(self, cfg, device, world, sched, emit):
        self.k, self.device, self.world = cfg["log_every"], device, world
        self.sched, self.emit = sched, emit
        self.precision = cfg["precision"]
        self.block = torch.zeros(self.k, len(self.COLS), device=device)
        self.host: list[tuple[dict, tuple]] = []  # (host-side fields, stamp) of `block`'s rows
        self.pending = None  # (host copy, event, records) of the previous block

    def add(self, rec: dict, loss: torch.Tensor, stamp: tuple) -> None:
        i = len(self.host)
        lr = self.sched.opt.param_groups[0]["lr"]
        self.block[i].copy_(torch.stack([loss.float(), lr.float(), self.sched.skipped.float()]))
        self.host.append((rec, stamp))
        if len(self.host) == self.k:
            self.flush()

    def flush(self) -> None:
        """Start the copy of the current block; emit the previous one (long finished)."""
        if not self.host:
            return
        block = self.block[: len(self.host)].clone()
        if self.world > 1:
            dist.all_reduce(block)
            block /= self.world
        if self.device.type == "cuda":
            host = torch.empty(block.shape, pin_memory=True)
            host.copy_(block, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = block, None
        self._drain()
        self.pending = (host, event, self.host)
        self.host = []

    def _drain(self) -> None:
        if self.pending is None:
            return
        host, event, recs = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()  # recorded after the block's steps: their events are done too
        for (rec, stamp), row in zip(recs, host.tolist()):
            rec.update(zip(self.COLS, row))
            rec["compute_ms"], rec["idle_ms"] = StepClock.read(stamp)
            if not math.isfinite(row[0]):
                raise NonFiniteLoss(
                    f"loss is {row[0]} at iteration {rec['iter']} ({self.precision}): stopping"
                )
        self.emit([rec for rec, _ in recs])

    def drain(self) -> None:
        """Everything recorded so far, emitted now (waits for the device: checkpoints, end)."""
        self.flush()
        self._drain()


def step_flop(cfg, device, batch, hw) -> float:
    """Forward + backward FLOP of one step, counted at 128x256 and scaled to hw (convs are linear
    in pixels). Useful FLOPs: conv1 is counted in its per-frame form, not the dense form CUDA
    runs (whose zero blocks would add 13% without flow)."""
    from torch.utils.flop_counter import FlopCounterMode

    from vsr.models.vsrnet import build_vsrnet, sr_step

    model = build_vsrnet(cfg, dense_conv1=False).to(device)
    x = torch.rand(1, cfg["frames"], 3, 128, 256, device=device)
    with FlopCounterMode(display=False) as fc:
        pred, target, _ = sr_step(model, x)
        torch.nn.functional.mse_loss(pred, target).backward()
    return fc.get_total_flops() * batch * hw[0] * hw[1] / (128 * 256)
