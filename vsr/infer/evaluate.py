"""`vsr evaluate`: per-clip Y-PSNR / SSIM of trained checkpoints beside bicubic, by the field's
protocol (vsr.metrics): each HR frame is degraded the study's way (4x4 box average), the model
sees the LR frames bilinearly upsampled x4 (as in training), bicubic x4 is the baseline; BT.601
studio-range Y, border crop = scale, per frame -> mean per clip -> mean over clips.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vsr import log
from vsr.errors import ConfigError
from vsr.fs import atomic_path
from vsr.infer.checkpoint import centred_windows, load_model, open_checked, read_frames
from vsr.infer.predict import predict_y
from vsr.metrics import bicubic_upscale, psnr, rgb_to_studio_y, ssim, studio_y
from vsr.models.vsrnet import SCALE

CROP = SCALE
PSNR_COL = f"Y-PSNR(studio, x{SCALE}, crop{CROP}, box-downsampled)"
SSIM_COL = f"Y-SSIM(studio, x{SCALE}, crop{CROP}, box-downsampled)"
PROTOCOL = (
    f"HR frames box-averaged {SCALE}x{SCALE} to LR; bicubic x{SCALE} baseline; models see the LR "
    "frames bilinearly upsampled (as in training), windows centred on each frame (edges repeated); "
    f"BT.601 studio-range Y, {CROP}-px border crop; per frame -> mean per clip -> mean over clips"
)
LOG = log.get("vsr.evaluate")
FLAT_DB = 40.0  # bicubic above this: the clip has little detail at the pixel scale


def _degraded(frames, H: int, W: int):
    """HR RGB frames -> (HR cropped to H x W, its LR frame: the 4x4 box average)."""
    for f, _ in frames:
        hr = f[:, :H, :W]
        yield hr, F.avg_pool2d(hr[None], SCALE)[0]


def _frame_scores(models, window, r_max: int) -> dict[str, tuple[float, float]]:
    """PSNR/SSIM of bicubic and of every model on the window's centre frame."""
    hr, lr = window[r_max][0][None], window[r_max][1][None]
    ref = rgb_to_studio_y(hr)
    bic = rgb_to_studio_y(bicubic_upscale(lr, hr.shape[-2:]))
    out = {"bicubic": (psnr(bic, ref, CROP).item(), ssim(bic, ref, CROP).item())}
    for name, model, n in models:
        r = n // 2
        p = studio_y(predict_y(model, torch.stack([w[1] for w in window[r_max - r : r_max + r + 1]]))[None])
        out[name] = (psnr(p, ref, CROP).item(), ssim(p, ref, CROP).item())
    return out


def evaluate_clip(models, video, device="cpu", max_frames: int | None = None) -> list[dict]:
    """One row per method (bicubic, then each model) with its mean over the clip's frames."""
    frames, info = read_frames(video, device, short="warn")
    H, W = info["height"] // SCALE * SCALE, info["width"] // SCALE * SCALE
    if (H, W) != (info["height"], info["width"]):
        LOG.info(f"{video}: {info['width']}x{info['height']} cropped to {W}x{H} (a multiple of {SCALE})")
    r_max = max(n for _, _, n in models) // 2
    scores: dict[str, list] = {}
    total = min(info["frames"] or 0, max_frames or 1 << 30) or None
    wins = centred_windows(_degraded(frames, H, W), 2 * r_max + 1)
    for i, window in enumerate(tqdm(wins, total=total, desc=Path(video).name, unit="frame")):
        if max_frames and i >= max_frames:
            break
        for name, s in _frame_scores(models, window, r_max).items():
            scores.setdefault(name, []).append(s)
    rows = []
    for name, s in scores.items():
        t = torch.tensor(s, dtype=torch.float64).mean(0).tolist()
        rows.append({"clip": str(video), "method": name, "frames": len(s), PSNR_COL: t[0], SSIM_COL: t[1]})
    bic = rows[0][PSNR_COL]
    for r in rows:
        r["gain over bicubic (dB)"] = r[PSNR_COL] - bic
    return rows


def evaluate(checkpoints, videos, device=None, max_frames=None) -> pd.DataFrame:
    """Per-clip rows for bicubic and each checkpoint, then the mean over clips per method."""
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames {max_frames}: must be at least 1 (leave it out for every frame)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = []
    for ck in checkpoints:  # every checkpoint is checked before any video is decoded
        model, cfg = load_model(ck, device)
        models.append((str(ck), model, model.frames))
    for v in videos:  # one-line error for a missing / unreadable / unusable video, before any work
        open_checked(v)[0].close()
    rows = [r for v in videos for r in evaluate_clip(models, v, device, max_frames)]
    df = pd.DataFrame(rows)
    cols = [PSNR_COL, SSIM_COL, "gain over bicubic (dB)"]
    mean = df.groupby("method", sort=False)[cols].mean().reset_index()
    mean.insert(0, "clip", f"mean over {len(videos)} clip(s)")
    mean.insert(2, "frames", df.groupby("method", sort=False)["frames"].sum().values)
    return pd.concat([df, mean], ignore_index=True)


def report(df: pd.DataFrame, csv: Path | None = None, json_path: Path | None = None) -> str:
    """The table as markdown (with the protocol and any flat-clip warning); CSV/JSON written
    atomically when asked."""
    lines = [f"Protocol: {PROTOCOL}.", ""]
    flat = df[
        (df["method"] == "bicubic") & (df[PSNR_COL] > FLAT_DB) & ~df["clip"].str.match(r"mean over \d+ clip")
    ]
    for clip, v in zip(flat["clip"], flat[PSNR_COL]):
        lines.append(f"Note: bicubic reaches {v:.1f} dB on {clip}: little detail at the pixel scale.")
    text = "\n".join(lines) + "\n" + df.to_markdown(index=False, floatfmt=".4f") + "\n"
    if csv:
        with atomic_path(csv) as tmp:
            df.to_csv(tmp, index=False)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps({"protocol": PROTOCOL, "rows": df.to_dict("records")}, indent=1))
    return text


def main(a) -> None:
    """`vsr evaluate` (arguments parsed by vsr.cli)."""
    t0 = time.perf_counter()
    df = evaluate(a.checkpoint, a.videos, a.device, a.max_frames)
    print(report(df, a.csv, a.json), end="")
    per_clip = df[(df["method"] == "bicubic") & ~df["clip"].str.match(r"mean over \d+ clip")]
    n, seconds = int(per_clip["frames"].sum()), time.perf_counter() - t0
    LOG.info(f"{n} frames x {len(a.checkpoint)} checkpoint(s) in {seconds:.1f} s: {n / seconds:.2f} frames/s")
