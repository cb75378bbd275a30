"""Aggregate training runs into results/table.md (+ table.html for the Snakemake report),
results/benchmark.csv and the plots. Each run's loader, precision, crop and batch are what it
recorded (final.pt's settings), never guessed from folder names."""

from __future__ import annotations

import datetime as dt
import html
import math
import numbers
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

import vsr.log  # noqa: E402
from vsr.fs import atomic_path, visible_bytes  # noqa: E402
from vsr.plots import plot  # noqa: E402,F401  (the report draws them; tests import it here)
from vsr.runs import Run, read_run  # noqa: E402

SMOKE_ITERS = 100  # runs shorter than this are smoke runs: every stage ran, no study numbers
SUM_TOLERANCE = 0.05  # compute + idle must be within 5% of wall
NA_CPU = "n/a (CPU)"

# The table's columns (the seed's first, in the seed's order) and what each means (the table's
# note: one sentence each).
COLUMNS = {
    "Data loader": "NVVL decodes the .mp4 scenes (NVDEC on GPUs, PyAV on CPU); .png reads frame "
    "folders through a PyTorch DataLoader.",
    "Input resolution": "the frames the loader reads.",
    "Crop size": "the random training crop (none: the whole frame, cut to a multiple of 64).",
    "Numerical precision": "the step's autocast dtype (on CPU only the loader's output dtype; compute"
    " stays fp32).",
    "PyTorch loader workers (.png only)": "DataLoader worker processes of the .png loader.",
    "Batch size": "windows per GPU (or CPU process) per iteration.",
    "CPU load (cores)": "mean CPU use of the run's own process tree (trainer, loader workers, decoder"
    " processes), in cores, sampled every 0.5 s in the steady state.",
    "Peak host memory (%)": "peak PSS of the run's process tree as % of RAM.",
    "Disk space for dataset (GB)": "the files the loader reads (data/<res>/scenes or frames), hidden "
    "temporaries not counted.",
    "Per iteration data time (ms, synced sample)": "the seed's figure: next() timed between two "
    "device synchronisations on every data_time_every-th iteration (the sync lets the loader catch "
    "up, so it understates the loader's cost).",
    "Load average (1 min)": "the machine's 1-minute load average over the same samples (all of its "
    "work, not only this run's).",
    "Iterations": "training iterations the run has done.",
    "Wall (ms/it)": "batch x processes / Images/s: the steady-state time of one iteration.",
    "Compute (ms/it)": "mean time from the start to the end of a step's work: CUDA events on the "
    "training stream on a GPU, host timestamps of the same boundaries on CPU (where ops run "
    "synchronously).",
    "Idle (ms/it)": "mean time from the end of one step's work to the start of the next, less any "
    "validation, checkpoint or image-logging pause between them: the device waiting for the host and "
    "the loader, measured like Compute, so Compute + Idle = Wall.",
    "next() wait (ms)": "host time spent in next() on every iteration, unsynchronised (mean).",
    "next() wait p95 (ms)": "the 95th percentile of the same.",
    "Images/s": "training windows per second over all processes in the steady state (after "
    "warmup_iters, pauses left out; a run continued from a checkpoint: after it continued, and every "
    "time and system column of its row covers the same iterations).",
    "TFLOP/s per GPU": "the useful FLOPs of a step (torch's FlopCounterMode) x steps per second, per GPU.",
    "GPU busy, events (%)": "Compute / Wall.",
    "GPU busy, NVML (%)": "mean of NVML's utilisation samples (the share of time any kernel ran).",
    "Val PSNR (dB)": "Y-PSNR of the model (BT.601 studio range, x4, 4-px border) on the val clips at "
    "the last validation, mean over clips.",
    "PSNR gain over bicubic (dB)": "Val PSNR minus bicubic x4 on the same frames.",
    "Device": "the trainer's device x processes.",
}
TEXT = ("Data loader", "Input resolution", "Crop size", "Numerical precision", "Device")
GPU_ONLY = ("TFLOP/s per GPU", "GPU busy, events (%)", "GPU busy, NVML (%)")


def _commit() -> str:
    """The code's commit: $VSR_COMMIT where a copy's git metadata is not the code's (the lent
    GPU machine's working-tree copy), else the checkout's HEAD."""
    if os.environ.get("VSR_COMMIT"):
        return os.environ["VSR_COMMIT"]
    try:
        return subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        return "unknown"


def _col(df: pd.DataFrame, key: str) -> pd.Series:
    return df[key].dropna() if key in df else pd.Series(dtype=float)


def _timing(run: Run) -> dict:
    """The time columns of one run (ms per iteration), from the records of the steady state that
    its speed and system figures cover (a continued run: the part after it continued)."""
    mon, cfg, train = run.sysmon, run.cfg, run.train
    lo, hi = mon.get("steady_iters") or (mon.get("warmup_iters", 1), train["iter"].max())
    sel = (train["iter"] > lo) & (train["iter"] <= hi)
    steady = train[sel] if sel.any() else train
    world = mon.get("world_size", 1)
    ips = mon.get("images_per_s") or steady["images_per_s"].mean()
    wall = cfg["batch"] * world / ips * 1e3
    compute, idle = _col(steady, "compute_ms").mean(), _col(steady, "idle_ms").mean()
    wait = _col(steady, "wait_ms")
    return {
        "Images/s": ips,
        "Wall (ms/it)": wall,
        "Compute (ms/it)": compute,
        "Idle (ms/it)": idle,
        "Per iteration data time (ms, synced sample)": _col(steady, "data_ms").mean(),
        "next() wait (ms)": wait.mean(),
        "next() wait p95 (ms)": wait.quantile(0.95),
        "GPU busy, events (%)": 100 * compute / wall,
        "GPU busy, NVML (%)": mon.get("gpu_util_mean", float("nan")),
        "TFLOP/s per GPU": mon.get("step_tflop", float("nan")) * ips / (cfg["batch"] * world),
        "sum_gap": (compute + idle) / wall - 1,
        "step_ms_median": steady["step_ms"].median(),
    }


def _quality(run: Run) -> dict:
    val = run.val
    psnr_col = next((c for c in val.columns if c.startswith("model/psnr")), None)
    last = val.iloc[-1] if len(val) else {}
    return {
        "Val PSNR (dB)": last[psnr_col] if psnr_col else float("nan"),
        "PSNR gain over bicubic (dB)": last.get("psnr_gain_over_bicubic", float("nan")),
    }


def row(run: Run, data_root) -> dict:
    """One table row (numbers, not yet formatted) and benchmark.csv's extra columns."""
    cfg, mon = run.cfg, run.sysmon
    folder = Path(data_root) / cfg["res"] / ("scenes" if cfg["loader"] == "nvvl" else "frames")
    crop = cfg.get("crop")
    return {
        "Data loader": "NVVL" if cfg["loader"] == "nvvl" else ".png",
        "Input resolution": cfg["res"],
        "Crop size": f"{crop[0]}x{crop[1]}" if crop else "none",
        "Numerical precision": cfg["precision"],
        "PyTorch loader workers (.png only)": cfg["png_workers"] if cfg["loader"] == "png" else "-",
        "Batch size": cfg["batch"],
        "Iterations": int(run.train["iter"].max()),
        "CPU load (cores)": mon.get("cpu_percent_mean", float("nan")) / 100,
        "Load average (1 min)": mon.get("load1_mean", float("nan")),
        "Peak host memory (%)": mon.get("peak_mem_percent", float("nan")),
        "Disk space for dataset (GB)": visible_bytes(folder) / 1e9,
        **_timing(run),
        **_quality(run),
        "Device": f"{mon.get('device', '?')} x{mon.get('world_size', 1)}",
        "gpu": not str(mon.get("device", "CPU")).startswith("CPU"),
        "peak_mem_gb": mon.get("peak_mem_gb", float("nan")),
        "backend": mon.get("backend", ""),
        "step_timing": mon.get("step_timing", ""),
        "run": str(run.path),
    }


def build_rows(runs: list[Run], study, data_root="data") -> pd.DataFrame:
    """The rows in the study's order (resolution, then loader and precision as named)."""
    order = {s["res"]: i for i, s in enumerate(study)}
    for r in runs:
        if r.cfg["res"] not in order:
            raise ValueError(f"{r.path}: resolution {r.cfg['res']} is not in the config's study")
    runs = sorted(runs, key=lambda r: (order[r.cfg["res"]], r.cfg["loader"], r.cfg["precision"]))
    return pd.DataFrame([row(r, data_root) for r in runs])


def fixed(x, on_gpu: bool = True, gpu_only: bool = False) -> str:
    """A table cell: fixed-point (never 3.39e+04), 'n/a' for a missing figure, 'n/a (CPU)' for
    a GPU-only figure on a CPU run."""
    if gpu_only and not on_gpu:
        return NA_CPU
    if isinstance(x, (str, bool, numbers.Integral)):
        return str(x)
    if x is None or pd.isna(x):
        return "n/a"
    if float(x).is_integer() and abs(x) >= 100:
        return f"{x:.0f}"
    if x == 0:
        return "0"
    decimals = 3 - math.floor(math.log10(abs(x)))  # 4 significant digits, in fixed point
    return f"{x:.{min(max(decimals, 0), 6)}f}"


def display(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: every cell a string."""
    cells = {}
    for name in COLUMNS:
        cells[name] = [fixed(v, g, name in GPU_ONLY) for v, g in zip(df[name], df["gpu"])]
    return pd.DataFrame(cells)


def smoke_note(df: pd.DataFrame) -> str:
    """The sentence that marks a table of smoke runs ('' when every run is long enough)."""
    short = df[df["Iterations"] < SMOKE_ITERS]
    if short.empty:
        return ""
    its = ", ".join(str(i) for i in sorted(set(short["Iterations"])))
    return (
        f"**Smoke run**: {len(short)} of {len(df)} runs trained only {its} iteration(s) "
        f"(< {SMOKE_ITERS}; the CPU default is 2): every stage ran for real, but their speed and "
        "PSNR are not results of the study. "
    )


def sum_note(df: pd.DataFrame) -> str:
    """Whether Compute + Idle is within SUM_TOLERANCE of Wall in every cell (naming those not)."""
    off = df[~(df["sum_gap"].abs() <= SUM_TOLERANCE)]
    if off.empty:
        return f"Compute + Idle is within {SUM_TOLERANCE:.0%} of Wall in every cell."
    cells = "; ".join(
        f"{r['Input resolution']} {r['Data loader']} {r['Numerical precision']} "
        f"({'n/a' if pd.isna(r['sum_gap']) else f'{r.sum_gap:+.0%}'})"
        for _, r in off.iterrows()
    )
    return f"**Compute + Idle is not within {SUM_TOLERANCE:.0%} of Wall** in: {cells}."


def note(df: pd.DataFrame) -> str:
    """The paragraph above the table: smoke runs, where and when, whether the times add up."""
    device = ", ".join(sorted(set(df["Device"])))
    return (
        f"{smoke_note(df)}Measured on {device}, {dt.date.today().isoformat()}, commit {_commit()}. "
        f"{sum_note(df)} {NA_CPU}: a GPU-only figure on a CPU run; the columns are defined below."
    )


def markdown(shown: pd.DataFrame) -> str:
    """The table (text left, numbers right, printed as formatted) and the column definitions."""
    align = ["left" if name in TEXT else "right" for name in shown.columns]
    table = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
    defs = "\n".join(f"- **{name}**: {text}" for name, text in COLUMNS.items())
    return f"{table}\n\nColumns:\n\n{defs}\n"


def aggregate(metrics_paths, study, output, data_root="data") -> pd.DataFrame:
    """Table (markdown and HTML), CSV and plots; each file is written whole or not at all.
    `study`: the config's study (its order orders the rows); each row shows what its run recorded."""
    runs = [read_run(p) for p in metrics_paths]
    df = build_rows(runs, study, data_root=data_root)
    df["smoke"] = df["Iterations"] < SMOKE_ITERS
    shown, text = display(df), note(df)
    plot(runs, output.psnr, output.loss)
    with atomic_path(output.csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(getattr(output, "html", None) or Path(output.table).with_suffix(".html")) as tmp:
        tmp.write_text(html_table(text, shown))
    with atomic_path(output.table) as tmp:
        tmp.write_text(f"# VSRNet loader benchmark\n\n{text}\n\n{markdown(shown)}")
    return df


def html_table(text: str, shown: pd.DataFrame) -> str:
    """The same table for the Snakemake report (report/table.rst includes it)."""
    defs = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in COLUMNS.items())
    body = shown.to_html(index=False, border=0, classes="table table-sm")
    return f"<p>{html.escape(text).replace('**', '')}</p>\n{body}\n<p>Columns:</p><ul>{defs}</ul>\n"


def read_config(paths) -> dict:
    """config.yaml and overlays, merged in order as `snakemake --configfile a b` merges them."""
    import yaml

    out: dict = {}
    for p in paths:
        for k, v in (yaml.safe_load(Path(p).read_text()) or {}).items():
            out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main(argv=None) -> None:
    """`python -m vsr.report --runs RUNS --data DATA --config config.yaml [overlay.yaml] --out DIR`:
    the table and plots from run folders made outside Snakemake."""
    import argparse
    from types import SimpleNamespace

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--runs", type=Path, required=True, help="folder of {res}/{loader}_{precision}/")
    ap.add_argument("--data", type=Path, required=True, help="folder of {res}/scenes|frames")
    ap.add_argument(
        "--config",
        type=Path,
        nargs="+",
        default=[Path(__file__).parents[1] / "config.yaml"],
        help="the workflow config (and overlays) whose study the runs belong to",
    )
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    runs = sorted(str(p) for p in a.runs.glob("*/*/metrics.jsonl"))
    if not runs:
        vsr.log.get("vsr.report").error(f"error: {a.runs}: no */*/metrics.jsonl")
        sys.exit(1)
    a.out.mkdir(parents=True, exist_ok=True)
    names = ("table.md", "benchmark.csv", "psnr.png", "train_loss.png")
    out = SimpleNamespace(**{k: str(a.out / n) for k, n in zip(("table", "csv", "psnr", "loss"), names)})
    aggregate(runs, read_config(a.config)["study"], out, data_root=a.data)


if __name__ == "__main__":
    main()
