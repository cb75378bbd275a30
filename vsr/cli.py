"""vsr: the NVVL video super-resolution study's tools (VSRNet x4, .mp4 vs .png loaders).

The whole study runs as a Snakemake workflow (`snakemake --cores all results/table.md`);
these commands are its pieces, and the way to use a trained model on your own video.
"""

from __future__ import annotations

import argparse
import functools
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
    fmt = argparse.ArgumentDefaultsHelpFormatter
    b = sub.add_parser("bench-loader", help="time a loader alone (no model)", formatter_class=fmt)
    b.add_argument("--loader", choices=["nvvl", "png", "torchcodec"], required=True, help="loader to time")
    b.add_argument("--backend", default="auto", choices=["auto", "nvdec", "cpu"], help="nvvl decoder")
    b.add_argument("--data", type=Path, required=True, help="the workflow's data/{res} folder")
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
    c.add_argument("--data", type=Path, required=True, help="the workflow's data/{res} folder")
    c.add_argument("--split", default="train", help="scenes/{split}")
    c.add_argument("--decoders", type=int, default=7, help="decoder processes, one session each")
    c.add_argument("--repeat", type=int, default=4, help="decode the files this many times")
    c.add_argument("--mps", action="store_true", help="run the decoders under CUDA MPS (started here)")
    c.add_argument("--out", type=Path, default=None, help="append a CSV row here")
    c.set_defaults(func=_nvdec_ceiling)


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
