"""Probe: bicubic x4 Y-PSNR (vsr.metrics protocol) of videos at a training resolution.

Each clip is transcoded as the workflow does (vsr.media.transcode), every frame is box-averaged
4x4 (as VSRNet's degradation), upscaled bicubically and scored on studio-range Y, crop 4;
per-frame PSNRs are averaged per clip.

    python tools/bicubic_psnr.py --res 540p CLIP.mp4 [CLIP.mp4 ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsr.media.transcode import transcode
from vsr.metrics import bicubic_upscale, psnr, rgb_to_studio_y


def clip_psnr(mp4: Path, res: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "clip.mp4"
        transcode(mp4, out, res, crf=18, preset="veryfast", keyframe_interval=4)
        with av.open(str(out)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    vals = []
    for rgb in frames:
        hr = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        h, w = hr.shape[-2:]
        hr = hr[..., : h // 4 * 4, : w // 4 * 4]
        bic = bicubic_upscale(F.avg_pool2d(hr, 4), hr.shape[-2:])
        vals.append(psnr(rgb_to_studio_y(bic), rgb_to_studio_y(hr), 4).item())
    return float(np.mean(vals)), len(vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--res", default="540p")
    a = ap.parse_args()
    for clip in a.clips:
        p, n = clip_psnr(clip, a.res)
        print(f"{clip}\t{a.res}\t{n} frames\tbicubic x4 Y-PSNR {p:.2f} dB")


if __name__ == "__main__":
    main()
