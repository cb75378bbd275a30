"""Validation the way the VSR field reports it: Y-PSNR / SSIM (studio range, border crop) of
every val window's centre frame, averaged per clip, then over clips; beside bicubic and the
network's own bilinear input. Batch norm (if any) runs on its running statistics (eval mode)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vsr.metrics import bicubic_upscale, metric_name, psnr, rgb_to_studio_y, ssim, studio_y
from vsr.models.vsrnet import SCALE, degrade, sr_step

WHO = ("model", "bicubic", "bilinear")


@torch.no_grad()
def validate(net, loader, cfg, device, world, autocast) -> dict:
    """Per-clip means (each clip = one val scene) then the mean over clips, over all ranks."""
    was_training = net.training
    net.eval()
    crop = cfg["val_crop"]
    n_files = len(loader.dataset.lengths)
    sums = torch.zeros(n_files, 7, dtype=torch.float64, device=device)
    batches = loader.sampler.batches(loader.batch_size, drop_last=False)
    for hr, wins in zip(loader, batches, strict=True):
        with autocast():
            pred, _, _ = sr_step(net, hr, cfg["flownet"]["flow_from"])
        c = hr.shape[1] // 2
        ref = rgb_to_studio_y(hr[:, c])
        lr = F.avg_pool2d(hr[:, c].float(), SCALE)
        bic = rgb_to_studio_y(bicubic_upscale(lr, hr.shape[-2:]))
        bil = rgb_to_studio_y(degrade(hr[:, c : c + 1].float())[:, 0])
        p = studio_y(pred)
        per_window = torch.stack(
            [
                psnr(p, ref, crop),
                ssim(p, ref, crop),
                psnr(bic, ref, crop),
                ssim(bic, ref, crop),
                psnr(bil, ref, crop),
                ssim(bil, ref, crop),
                torch.ones(len(wins), device=device),
            ],
            1,
        ).double()
        files = torch.tensor([w.file for w in wins], device=device)
        sums.index_add_(0, files, per_window)
    if world > 1:
        dist.all_reduce(sums)
    net.train(was_training)
    counts = sums[:, 6]
    seen = counts > 0
    per_clip = sums[seen, :6] / counts[seen, None]
    mean = per_clip.mean(0).tolist() if len(per_clip) else [float("nan")] * 6
    out = {"count": int(counts.sum().item()), "clips": int(seen.sum().item())}
    for i, who in enumerate(WHO):
        for j, kind in enumerate(("psnr", "ssim")):
            out[f"{who}/{metric_name(kind, SCALE, crop)}"] = mean[2 * i + j]
    out["psnr_gain_over_bicubic"] = mean[0] - mean[2]
    out["per_clip_psnr_gain"] = [round(x, 4) for x in (per_clip[:, 0] - per_clip[:, 2]).tolist()]
    return out
