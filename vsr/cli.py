"""`vsr` command line: parses arguments and dispatches to plain modules.

bench-loader / nvdec-ceiling: vsr.bench.loader; prepare: vsr.prepare; evaluate: vsr.infer.evaluate;
upscale: vsr.infer.upscale.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vsr.errors import VsrError

PRECISIONS = ("fp32", "fp16", "bf16")  # the keys of vsr.train.step.DTYPES (torch is imported late)


def _bench_loader(a):
    from vsr.bench.loader import bench_loader

    bench_loader(a)


def _nvdec_ceiling(a):
    from vsr.bench.loader import nvdec_ceiling

    nvdec_ceiling(a)


def _prepare(a):
    from vsr.prepare import prepare

    prepare(a)


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt")


def _split_checkpoints(a, parser) -> None:
    """`--checkpoint A.pt B.pt clip.mp4`: argparse gives every path to --checkpoint; the
    checkpoints are the first one and those after it that end like a checkpoint."""
    n = 1
    while n < len(a.checkpoint) and a.checkpoint[n].endswith(CHECKPOINT_SUFFIXES):
        n += 1
    a.videos = [Path(v) for v in a.checkpoint[n:]] + list(a.videos)
    a.checkpoint = [Path(c) for c in a.checkpoint[:n]]
    if not a.videos:
        parser.error("evaluate: give at least one video after the checkpoints")


def _evaluate(a):
    from vsr.infer.evaluate import main

    main(a)


def _upscale(a):
    from vsr.infer.upscale import main

    main(a)


def _bench_args(sub) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    b = sub.add_parser("bench-loader", help="time a loader alone (no model)", formatter_class=fmt)
    b.add_argument("--loader", choices=["nvvl", "png", "torchcodec"], required=True, help="loader to time")
    b.add_argument("--backend", default="auto", choices=["auto", "nvdec", "cpu"], help="nvvl decoder")
    b.add_argument("--data", type=Path, required=True, help="data/{res} folder of `vsr prepare`")
    b.add_argument("--split", default="train", help="scenes/{split} (nvvl) or frames/{split} (png)")
    b.add_argument("--batch", type=int, default=7, help="windows per batch")
    b.add_argument("--frames", type=int, default=3, help="frames per window (odd)")
    b.add_argument(
        "--crop", type=int, nargs=2, default=None, metavar=("H", "W"), help="crop (default: frame)"
    )
    b.add_argument("--dtype", choices=PRECISIONS, default="fp16", help="dtype of the delivered batches")
    b.add_argument("--iters", type=int, default=100, help="batches timed")
    b.add_argument("--warmup", type=int, default=5, help="batches before the clock starts")
    b.add_argument("--workers", type=int, default=10, help="png DataLoader workers")
    b.add_argument("--decoders", type=int, default=7, help="nvdec decoder threads (--processes 0)")
    b.add_argument(
        "--processes",
        type=int,
        default=None,
        help="nvvl decoder processes (0: decoder threads in this process; default: 7 for nvdec, 0 for cpu)",
    )
    b.add_argument("--threads", type=int, default=8, help="cpu backend / torchcodec decode threads")
    b.add_argument("--run", type=int, default=4, help="sampler: windows per run, each run decoded once")
    b.add_argument("--mps", action="store_true", help="run decoder processes under CUDA MPS (started here)")
    b.add_argument("--prefetch", type=int, default=2, help="batches decoded ahead")
    b.add_argument("--step-ms", type=float, default=0.0, help="simulated compute per batch (ms)")
    b.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    b.add_argument("--seed", type=int, default=0, help="sampler seed")
    b.add_argument("--out", type=Path, default=None, help="append a CSV row here")
    b.set_defaults(func=_bench_loader)
    c = sub.add_parser("nvdec-ceiling", help="all NVDEC engines decoding sequentially", formatter_class=fmt)
    c.add_argument("--data", type=Path, required=True, help="data/{res} folder of `vsr prepare`")
    c.add_argument("--split", default="train", help="scenes/{split}")
    c.add_argument("--decoders", type=int, default=7, help="decoder processes, one session each")
    c.add_argument("--repeat", type=int, default=4, help="decode the files this many times")
    c.add_argument("--mps", action="store_true", help="run the decoders under CUDA MPS (started here)")
    c.add_argument("--out", type=Path, default=None, help="append a CSV row here")
    c.set_defaults(func=_nvdec_ceiling)


def _prepare_args(sub) -> None:
    p = sub.add_parser("prepare", help="synthetic data per resolution with PyAV only")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--res", nargs="+", default=["540p", "720p"])
    p.add_argument("--render", type=int, nargs=2, default=[1920, 1080])
    p.add_argument("--fps", type=int, default=60)
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--photo-scale",
        type=float,
        default=0.5,
        help="photographs' scale in the render (source.synthetic.photo_scale; config/gpu.yaml: 1.0)",
    )
    p.add_argument(
        "--val-every",
        type=int,
        default=None,
        help="every Nth scene is val (default: scenes.val_every of --config)",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="workflow config (default: the checkout's config.yaml)"
    )
    p.add_argument("--gop", type=int, default=4)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.set_defaults(func=_prepare)


def _model_args(sub) -> None:
    e = sub.add_parser("evaluate", help="per-clip Y-PSNR/SSIM of checkpoints beside bicubic")
    e.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        help="final.pt file(s) of vsr.train.loop; the first argument after them not ending in "
        ".pt/.pth starts the videos (or separate them with --)",
    )
    e.add_argument("videos", nargs="*", type=Path, help="HR clips (degraded by 4x4 box average)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    e.add_argument("--max-frames", type=int, default=None, help="only the first N frames per clip")
    e.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    e.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    e.set_defaults(func=_evaluate)
    u = sub.add_parser("upscale", help="every frame x4 with a checkpoint (H.264, audio kept)")
    u.add_argument("input", type=Path)
    u.add_argument("output", type=Path)
    u.add_argument("--checkpoint", required=True, type=Path)
    u.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    u.add_argument("--decode", choices=["pyav", "nvdec"], default="pyav", help="nvdec: PyNvVideoCodec")
    u.add_argument("--crf", type=int, default=18)
    u.add_argument("--preset", default="medium")
    u.set_defaults(func=_upscale)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="vsr", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _bench_args(sub)
    _prepare_args(sub)
    _model_args(sub)
    a = ap.parse_args(argv)
    if a.cmd == "evaluate":
        _split_checkpoints(a, ap)
    try:
        a.func(a)
    except VsrError as e:  # bad input or a failed run: one console line, no traceback
        raise SystemExit(f"vsr {a.cmd}: {' '.join(str(e).split())}") from None


if __name__ == "__main__":
    sys.exit(main())
