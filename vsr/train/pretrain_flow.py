"""FlowNet-SD without downloaded weights: supervised pretraining on rendered pairs.

The FlyingChairs recipe (Dosovitskiy et al. 2015) on our own renderer (vsr.media.render):
random affine layers of photographs over a moving photograph collage, with exact flow. Speeds
are log-uniform from `min_speed` to `max_speed` LR pixels per frame (0.005-4: mostly sub-pixel,
as in real video; bigbuckbunny's median is 0.06 LR px/frame, docs/quality.md), and the pairs
go through VSRNet's degradation (4x box average, bilinear back up), so the net sees what it
sees inside VSRNet. Loss: FlowNet's multi-scale EPE (flow2..flow6 against the average-pooled
target, weights 0.32/2^s).

Judged twice: end-point error on held-out rendered pairs, and warp PSNR on real neighbouring
frames (the study's own val scenes), each beside zero flow and OpenCV DIS.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import vsr.log
from vsr.fs import atomic_path
from vsr.media.render import make_scene, pair_flow, render
from vsr.models.flownet_sd import DIV_FLOW, FlowNetSD
from vsr.models.vsrnet import degrade, dis_flow, rgb_to_y
from vsr.models.warp import warp
from vsr.train.config import PretrainConfig, pretrain_config

SCALE_WEIGHTS = (0.32, 0.16, 0.08, 0.04, 0.02)  # flow2 .. flow6, as flownet2-pytorch's MultiScale


def render_pair(rng, size: int, max_speed: float, min_speed: float = 0.005, photo_scale: float = 0.5):
    """One rendered HR pair: (frames float32 [2, 3, size, size] in [0, 1], backward flow of
    frame 0 into frame 1 float32 [2, size, size] in pixels)."""
    speed = (min_speed, max_speed)
    scene = make_scene(rng, size, size, 8, photo_scale, speed=speed, bg_speed=speed, layers=(1, 4))
    t = float(rng.integers(0, 6))
    f0, l0, p0 = render(scene, t, size, size)
    f1, l1, p1 = render(scene, t + 1, size, size)
    flow, _ = pair_flow(p0, p1, l0, l1)
    frames = torch.from_numpy(np.stack([f0, f1])).permute(0, 3, 1, 2).float() / 255
    return frames, torch.from_numpy(flow).permute(2, 0, 1).contiguous()


class PairStream(torch.utils.data.IterableDataset):
    """An endless stream of rendered pairs; each DataLoader worker draws its own seed."""

    def __init__(self, size: int, max_speed: float, min_speed: float, seed: int):
        self.size, self.max_speed, self.min_speed, self.seed = size, max_speed, min_speed, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield render_pair(rng, self.size, self.max_speed, self.min_speed)


def multiscale_epe(preds, target: torch.Tensor) -> torch.Tensor:
    """FlowNet's training loss: weighted mean EPE of each scale's flow/20 vs the pooled target."""
    loss = 0.0
    for w, p in zip(SCALE_WEIGHTS, preds):
        t = F.adaptive_avg_pool2d(target, p.shape[-2:]) / DIV_FLOW
        loss = loss + w * (p.float() - t).norm(dim=1).mean()
    return loss


def pair_input(frames: torch.Tensor) -> torch.Tensor:
    """[B, 2, 3, H, W] HR pairs -> FlowNet's normalised 6-channel input of the degraded pair."""
    lr = degrade(frames)
    mean = lr.mean(dim=(1, 3, 4), keepdim=True)
    return (lr - mean).reshape(lr.shape[0], 6, *lr.shape[-2:])


def epe_table(net: FlowNetSD, pairs, device) -> dict:
    """Mean EPE (HR pixels) of zero flow, DIS and the net on held-out rendered pairs."""
    sums = {"zero": 0.0, "dis": 0.0, "flownet": 0.0}
    net.eval()
    with torch.no_grad():
        for frames, flow in pairs:
            lr = degrade(frames[None])
            est = {
                "zero": torch.zeros_like(flow[None]),
                "dis": dis_flow(lr[:, 0], lr[:, 1]),
                "flownet": net.flow(lr[:, 0].to(device), lr[:, 1].to(device)).cpu(),
            }
            for k, v in est.items():
                sums[k] += (v[0] - flow).norm(dim=0).mean().item()
    net.train()
    return {k: v / len(pairs) for k, v in sums.items()}


def warp_psnr_table(net: FlowNetSD | None, pairs, device, crop: int = 8) -> dict:
    """Warp PSNR (dB, luma of the degraded frames, `crop` px border off) of frame t+1 warped
    onto frame t by zero flow, DIS and the net, over real neighbouring HR frames [2, 3, H, W]."""
    out = {"zero": [], "dis": []} | ({"flownet": []} if net is not None else {})
    if net is not None:
        net.eval()
    with torch.no_grad():
        for frames in pairs:
            lr = degrade(frames[None])
            y0, y1 = rgb_to_y(lr[:, 0]), rgb_to_y(lr[:, 1])
            est = {"zero": torch.zeros(1, 2, *y0.shape[-2:]), "dis": dis_flow(lr[:, 0], lr[:, 1])}
            if net is not None:
                est["flownet"] = net.flow(lr[:, 0].to(device), lr[:, 1].to(device)).cpu()
            for k, v in est.items():
                d = (warp(y1, v) - y0)[..., crop:-crop, crop:-crop] * 255
                out[k].append(10 * np.log10(255.0**2 / max(d.pow(2).mean().item(), 1e-10)))
    if net is not None:
        net.train()
    return {k: float(np.mean(v)) for k, v in out.items()}


def real_pairs(clips, size: int, max_pairs: int, height: int = 540) -> list[torch.Tensor]:
    """Neighbouring frame pairs of real clips (resized to `height`, centre crop size x size),
    spread evenly over the clips."""
    import av
    import cv2

    per_clip = max(1, -(-max_pairs // max(1, len(clips))))
    out = []
    for clip in clips:
        with av.open(str(clip)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        if len(frames) < 2:
            continue
        for i in np.linspace(0, len(frames) - 2, per_clip).round().astype(int):
            pair = []
            for f in frames[i : i + 2]:
                h, w = f.shape[:2]
                f = cv2.resize(f, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
                y0, x0 = (f.shape[0] - size) // 2, (f.shape[1] - size) // 2
                pair.append(torch.from_numpy(f[y0 : y0 + size, x0 : x0 + size].copy()).permute(2, 0, 1))
            out.append(torch.stack(pair).float() / 255)
    return out[:max_pairs]


def val_clips(scenes_csv, scenes_dir) -> list[Path]:
    """The val scenes of the study's own source (data/scenes.csv, data/scenes/*.mp4)."""
    import csv

    with open(scenes_csv, newline="") as f:
        return [Path(scenes_dir) / f"{r['scene']}.mp4" for r in csv.DictReader(f) if r["split"] == "val"]


def save_checkpoint(net: FlowNetSD, path, iteration: int, epe: float) -> None:
    """flownet2-pytorch's format: vsr.models.flownet_sd.load_checkpoint loads it strictly."""
    with atomic_path(path) as tmp:
        torch.save({"epoch": iteration, "state_dict": net.state_dict(), "best_EPE": epe}, tmp)


def pretrain(width: float, cfg: dict, checkpoint, metrics, val_clips=(), device=None, log=None) -> dict:
    """Train FlowNet-SD(width) on rendered pairs; write the checkpoint and a metrics JSON
    (held-out EPE and real-pair warp PSNR, each beside zero flow and DIS). Returns the metrics.
    `cfg`: flownet.pretrain's settings (defaults and checks: the config schema's)."""
    c = pretrain_config(cfg)
    log = log or vsr.log.get("vsr.pretrain_flownet").info
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(c.seed)
    net = FlowNetSD(width).to(device)
    held = [
        render_pair(np.random.default_rng([c.seed, 10**6, i]), c.size, c.max_speed, c.min_speed)
        for i in range(c.eval_pairs)
    ]
    real = real_pairs(val_clips, c.size, c.eval_pairs) if val_clips else []
    t0 = time.time()
    it = _fit(net, c, device, log)
    out = {
        "width": width,
        "iterations": it,
        "seconds": round(time.time() - t0, 1),
        "config": dataclasses.asdict(c),
        "epe_rendered_hr_px": epe_table(net, held, device),
    }
    if real:
        out["warp_psnr_real_db"] = warp_psnr_table(net, real, device)
        out["real_pairs"] = len(real)
    save_checkpoint(net, checkpoint, it, out["epe_rendered_hr_px"]["flownet"])
    with atomic_path(metrics) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    log(f"held-out EPE (HR px): {out['epe_rendered_hr_px']}")
    if real:
        log(f"warp PSNR on {len(real)} real pairs (dB): {out['warp_psnr_real_db']}")
    return out


def _fit(net: FlowNetSD, c: PretrainConfig, device, log) -> int:
    """Adam with a cosine schedule on the endless pair stream; returns the iterations done."""
    opt = torch.optim.Adam(net.parameters(), lr=c.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.iterations, eta_min=c.lr / 20)
    stream = PairStream(c.size, c.max_speed, c.min_speed, c.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=c.batch, num_workers=c.workers)
    t0, it = time.time(), 0
    for frames, flow in loader:
        it += 1
        preds = net(pair_input(frames.to(device, non_blocking=True)))
        loss = multiscale_epe(preds, flow.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % max(1, c.iterations // 10) == 0 or it == c.iterations:
            log(f"it {it}/{c.iterations} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
        if it >= c.iterations:
            return it
    return it
