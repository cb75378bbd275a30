"""Optimiser and learning-rate schedule, both defined in iterations and kept on the device.

- AdamW (decoupled decay) on the SR net's conv weights only; biases, norms and FlowNet are never
  decayed (L2 decay on a zero-initialised FlowNet drove its weights to zero).
- FlowNet learns at `flow_lr_scale` x the SR lr and is held still for its first
  `flow_freeze_iters` optimiser steps.
- Linear warm-up to `lr_max`, cosine to `lr_min` at the last iteration. The schedule counts
  optimiser steps *taken*: a step GradScaler skips (inf/NaN gradients in fp16) does not advance
  it. The count lives on the device (fused AdamW takes a tensor lr), so nothing waits for the host.
"""

from __future__ import annotations

import math

import torch


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decayed SR weights, undecayed SR biases / norms, and FlowNet (the model's
    `flow_parameters()`, where it has them)."""
    flow = [p for p in getattr(model, "flow_parameters", list)() if p.requires_grad]
    is_flow = {id(p) for p in flow}
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad or id(p) in is_flow:
            continue
        if p.ndim > 1:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0, "flow": False},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "flow": False},
        {"params": flow, "weight_decay": 0.0, "lr_scale": None, "flow": True},
    ]
    return [g for g in groups if g["params"]]


class Schedule:
    """lr of every group for the current number of optimiser steps taken (device tensors)."""

    def __init__(self, opt, cfg: dict, device):
        self.opt, self.total = opt, max(1, cfg["iterations"])
        self.lr_max, self.lr_min, self.warmup = cfg["lr_max"], cfg["lr_min"], cfg["lr_warmup"]
        freeze = cfg["flow_freeze_iters"]
        self.freeze = round(0.05 * self.total) if freeze is None else freeze
        self.flow_scale = cfg["flow_lr_scale"]
        self.found_inf = None  # GradScaler hands fused optimisers `found_inf` during step()
        opt.register_step_post_hook(self._seen)
        self.taken = torch.zeros((), dtype=torch.float32, device=device)
        self.skipped = torch.zeros((), dtype=torch.float32, device=device)
        for g in opt.param_groups:
            g["lr"] = torch.zeros((), dtype=torch.float32, device=device)
        self.apply()

    def lr_at(self, step: torch.Tensor) -> torch.Tensor:
        warm = self.lr_max * (step + 1) / max(1, self.warmup)
        t = ((step - self.warmup) / max(1, self.total - self.warmup)).clamp(0, 1)
        cos = self.lr_min + 0.5 * (self.lr_max - self.lr_min) * (1 + torch.cos(math.pi * t))
        return torch.where(step < self.warmup, warm, cos)

    def apply(self) -> None:
        lr = self.lr_at(self.taken)
        for g in self.opt.param_groups:
            if g["flow"]:
                g["lr"].copy_(lr * self.flow_scale * (self.taken >= self.freeze))
            else:
                g["lr"].copy_(lr * g["lr_scale"])

    def _seen(self, opt, args, kwargs) -> None:
        self.found_inf = getattr(opt, "found_inf", None)

    def step(self) -> None:
        """After `scaler.step(opt)`: count the step unless the scaler skipped it."""
        found_inf, self.found_inf = self.found_inf, None
        if found_inf is None:
            self.taken += 1
        else:
            skip = (found_inf > 0).float()
            self.taken += 1 - skip
            self.skipped += skip
        self.apply()

    def state_dict(self) -> dict:
        return {"taken": self.taken.item(), "skipped": self.skipped.item()}

    def load_state_dict(self, s: dict) -> None:
        self.taken.fill_(s["taken"])
        self.skipped.fill_(s["skipped"])
        self.apply()


def make_optimizer(model, cfg: dict, device):
    groups = param_groups(model, cfg["weight_decay"])
    opt = torch.optim.AdamW(groups, lr=cfg["lr_max"], fused=True)
    return opt, Schedule(opt, cfg, device)


def optimizer_state(opt) -> dict:
    """The optimiser's state without the schedule's lr tensors (they are rebuilt)."""
    s = opt.state_dict()
    for g in s["param_groups"]:
        g["lr"] = float(g["lr"])
    return s


def load_optimizer_state(opt, s: dict) -> None:
    lrs = [g["lr"] for g in opt.param_groups]
    opt.load_state_dict(s)
    for g, lr in zip(opt.param_groups, lrs):
        g["lr"] = lr
