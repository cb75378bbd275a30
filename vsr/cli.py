"""vsr: the NVVL video super-resolution study's tools (VSRNet x4, .mp4 vs .png loaders).

The whole study runs as a Snakemake workflow (`snakemake --cores all results/table.md`);
these commands are its pieces, and the way to use a trained model on your own video.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from pathlib import Path

from vsr import __version__
from vsr.errors import VsrError

PRECISIONS = ("fp32", "fp16", "bf16")  # the keys of vsr.train.step.DTYPES (torch is imported late)


class HELP(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none or the help already says it."""

    def _get_help_string(self, action):
        if action.default in (None, argparse.SUPPRESS) or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


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


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _crf(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 51:
        raise argparse.ArgumentTypeError(f"must be 0 (lossless) .. 51, got {n}")
    return n


def _bench_args(sub) -> None:
    b = sub.add_parser("bench-loader", help="time a loader alone (no model)")
    b.add_argument("--loader", choices=["nvvl", "png", "torchcodec"], required=True)
    b.add_argument("--backend", default="auto", choices=["auto", "nvdec", "cpu"])
    b.add_argument("--data", type=Path, required=True, help="data/{res}")
    b.add_argument("--split", default="train")
    b.add_argument("--batch", type=int, default=7)
    b.add_argument("--frames", type=int, default=3)
    b.add_argument("--crop", type=int, nargs=2, default=None)
    b.add_argument("--dtype", choices=PRECISIONS, default="fp16")
    b.add_argument("--iters", type=int, default=100)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--workers", type=int, default=10, help="png DataLoader workers")
    b.add_argument("--decoders", type=int, default=7, help="nvdec decoders per GPU")
    b.add_argument("--processes", type=int, default=0, help="nvvl: decoder processes (0: threads)")
    b.add_argument("--threads", type=int, default=8, help="cpu backend decode threads")
    b.add_argument("--prefetch", type=int, default=2)
    b.add_argument("--step-ms", type=float, default=0.0, help="simulated compute per batch")
    b.add_argument("--device", default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, default=None, help="append a CSV row here")
    b.set_defaults(func=_bench_loader)
    c = sub.add_parser("nvdec-ceiling", help="all NVDEC engines decoding sequentially")
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--split", default="train")
    c.add_argument("--decoders", type=int, default=7)
    c.add_argument("--repeat", type=int, default=4, help="decode the files this many times")
    c.add_argument("--out", type=Path, default=None)
    c.set_defaults(func=_nvdec_ceiling)


def _prepare_args(sub) -> None:
    p = sub.add_parser("prepare", help="render synthetic training data per resolution (PyAV, no Snakemake)")
    p.add_argument("--out", type=Path, required=True, help="folder that gets {res}/scenes and {res}/frames")
    p.add_argument("--res", nargs="+", default=["540p", "720p"], help="resolutions: 4K 1080p 720p 540p")
    p.add_argument(
        "--render", type=int, nargs=2, default=[1920, 1080], metavar=("W", "H"), help="render size"
    )
    p.add_argument("--fps", type=int, default=60, help="frames per second")
    p.add_argument("--scenes", type=int, default=8, help="number of scenes")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each scene")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenes")
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
    p.add_argument("--gop", type=int, default=4, help="keyframe interval of the encoded scenes")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="scenes encoded in parallel")
    p.set_defaults(func=_prepare)


def _model_args(sub) -> None:
    from vsr.infer.upscale import PRESETS

    e = sub.add_parser(
        "evaluate", help="Y-PSNR / SSIM of checkpoints beside bicubic on your HR clips: a table"
    )
    e.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        help="final.pt file(s) of vsr.train.loop; the first argument after them not ending in "
        ".pt/.pth starts the videos (or separate them with --)",
    )
    e.add_argument("videos", nargs="*", type=Path, help="HR clips (degraded by 4x4 box average)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    e.add_argument(
        "--max-frames", type=_positive, default=None, help="only the first N frames per clip (default: all)"
    )
    e.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    e.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    e.set_defaults(func=_evaluate)
    u = sub.add_parser(
        "upscale", help="your own video x4 with a trained checkpoint -> H.264 .mp4 (audio kept)"
    )
    u.add_argument("input", type=Path, help="your video (any size with even width and height)")
    u.add_argument(
        "output", type=Path, help="the x4 .mp4 to write (not the input; written whole or not at all)"
    )
    u.add_argument(
        "--checkpoint", required=True, type=Path, help="final.pt of a training run (runs/.../final.pt)"
    )
    u.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    u.add_argument("--decode", choices=["pyav", "nvdec"], default="pyav", help="nvdec: PyNvVideoCodec")
    u.add_argument(
        "--crf", type=_crf, default=18, help="x264 quality: 0 lossless, 18 visually lossless, 51 worst"
    )
    u.add_argument("--preset", choices=PRESETS, default="medium", help="x264 speed / size trade-off")
    u.set_defaults(func=_upscale)


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends like Ctrl-C: temporaries are removed on the way out


def parser() -> argparse.ArgumentParser:
    """`vsr`'s argument parser: one subcommand per tool, every option's default shown."""
    ap = argparse.ArgumentParser(
        prog="vsr",
        description=__doc__,
        epilog="`vsr COMMAND --help` lists a command's options and their defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"vsr {__version__}")
    sub = ap.add_subparsers(
        dest="cmd",
        required=True,
        metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HELP),
    )
    _bench_args(sub)
    _prepare_args(sub)
    _model_args(sub)
    return ap


def main(argv=None) -> None:
    ap = parser()
    a = ap.parse_args(argv)
    if a.cmd == "evaluate":
        _split_checkpoints(a, ap)
    if a.cmd in ("evaluate", "upscale"):
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        a.func(a)
    except VsrError as e:  # bad input or a failed run: one console line, no traceback
        raise SystemExit(f"vsr {a.cmd}: {' '.join(str(e).split())}") from None
    except KeyboardInterrupt:
        raise SystemExit(f"vsr {a.cmd}: interrupted; nothing half-written was kept") from None


if __name__ == "__main__":
    sys.exit(main())
