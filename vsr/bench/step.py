"""The training step alone, on random input: ms/step, images/s, TFLOP/s per variant.

    python -m vsr.bench.step --variants eager,tuned,compiled --precisions fp16,bf16,fp32 \
        --flow finetune,frozen,none --out step.csv [--profile prof.txt]

`landed` is the step as it was landed (sigmoid head + batch norm, no cudnn autotuning, NCHW,
eager); `eager` the same with today's net (residual head, no batch norm); `tuned` adds cudnn
autotuning + channels_last; `compiled` adds torch.compile; `compiled_shared` is `compiled` with
conv1 in its per-frame form (VSRNet.dense_conv1 off: the A/B of that change); `graphs` is
`compiled` with CUDA graphs (mode reduce-overhead), `autotune` with max-autotune-no-cudagraphs
(neither measured yet). It runs the trainer's own train_step / optimiser / GradScaler, so what it
measures is what training runs.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from vsr.models.vsrnet import build_vsrnet
from vsr.train.config import merged
from vsr.train.optim import make_optimizer
from vsr.train.step import autocast_for, step_flop, train_step


def _time(step, iters: int) -> tuple[float, float]:
    """(seconds of 3 warm-up steps, ms per step of `iters` more by CUDA events)."""
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        step()
    end.record()
    torch.cuda.synchronize()
    return warm_s, start.elapsed_time(end) / iters


def _profile(step, path, variant, precision, flow) -> None:
    """Append torch.profiler's kernel table of 5 steps to `path`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    with open(path, "a") as f:
        f.write(f"\n## {variant} {precision} flow {flow}\n")
        f.write(p.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))


def bench(variant, precision, flow, batch, hw, iters, device, features, width, profile=None):
    shared = variant.endswith("_shared")
    full_name = variant
    variant = variant.removesuffix("_shared")
    landed = variant == "landed"  # the seed-shaped net as landed: sigmoid head, batch norm, eager
    model_cfg = {"features": features, "head": "sigmoid" if landed else "residual", "batch_norm": landed}
    cfg = merged(
        {
            "precision": precision,
            "gpus": 1,
            "model": model_cfg,
            "iterations": 10_000,
            "flownet": {"mode": flow, "width": width, "checkpoint": None},
        }
    )
    torch.backends.cudnn.benchmark = variant not in ("eager", "landed")
    model = build_vsrnet(cfg, dense_conv1=False if shared else None).to(device)  # frozen: random weights
    if variant not in ("eager", "landed"):
        model = model.to(memory_format=torch.channels_last)
    modes = {"compiled": "default", "graphs": "reduce-overhead", "autotune": "max-autotune-no-cudagraphs"}
    fwd = torch.compile(model, mode=modes[variant]) if variant in modes else model
    opt, sched = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    ac = autocast_for(cfg, device)
    x = torch.rand(batch, 3, 3, *hw, device=device)

    def step():
        train_step(fwd, x, opt, sched, scaler, ac, "lr")

    warm_s, ms = _time(step, iters)
    if profile:
        _profile(step, profile, full_name, precision, flow)
    flop = step_flop(cfg, device, batch, hw)
    row = {
        "variant": full_name,
        "precision": precision,
        "flow": flow,
        "batch": batch,
        "hw": f"{hw[0]}x{hw[1]}",
        "ms_per_step": round(ms, 2),
        "images_per_s": round(batch * 1e3 / ms, 1),
        "step_tflop": round(flop / 1e12, 2),
        "tflop_per_s": round(flop / ms / 1e9, 1),
        "warmup_s": round(warm_s, 1),
        "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1),
        "device": torch.cuda.get_device_name(),
    }
    print(row, flush=True)
    torch.cuda.reset_peak_memory_stats()
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variants", default="eager,tuned,compiled")
    ap.add_argument("--precisions", default="fp16,bf16,fp32")
    ap.add_argument("--flow", default="finetune")
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--hw", type=int, nargs=2, default=[512, 960])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--features", type=int, nargs=2, default=[64, 32])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--profile", default=None, help="append torch.profiler tables here")
    a = ap.parse_args(argv)
    device = torch.device("cuda")
    rows = []
    for flow in a.flow.split(","):
        for v in a.variants.split(","):
            for p in a.precisions.split(","):
                prof = a.profile if p == "fp16" and v in ("landed", "compiled") else None
                rows.append(
                    bench(v, p, flow, a.batch, tuple(a.hw), a.iters, device, a.features, a.width, prof)
                )
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False))
    if a.out:
        df.to_csv(a.out, index=False, mode="a")


if __name__ == "__main__":
    main()
