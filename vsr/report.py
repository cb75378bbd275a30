"""Aggregate training runs into results/table.md, results/benchmark.csv and the plots."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from vsr.fs import (
    atomic_path,  # noqa: E402
    dir_size_bytes,  # noqa: E402
)

SMOKE_ITERS = 100  # runs shorter than this are smoke runs: every stage ran, no study numbers

COLUMNS = [  # the seed's columns, in the seed's order, then ours
    "Data loader",
    "Input resolution",
    "Crop size",
    "Numerical precision",
    "PyTorch loader workers (.png only)",
    "Batch size",
    "CPU load",
    "Peak host memory (%)",
    "Disk space for dataset (GB)",
    "Per iteration data time (ms)",
    "Step time (ms)",
    "Images/s",
    "TFLOP/s per GPU",
    "Val PSNR (dB)",
    "PSNR gain over bicubic (dB)",
    "GPU busy (%)",
    "Device",
]


def read_run(metrics_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    p = Path(metrics_path)
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    train = pd.DataFrame([r for r in rows if r["kind"] == "train"])
    val = pd.DataFrame([r for r in rows if r["kind"] == "val"])
    sysmon = json.loads((p.parent / "sysmon.json").read_text())
    cfg = {}
    loader, precision = p.parent.name.split("_", 1)
    cfg.update(loader=loader, precision=precision, res=p.parent.parent.name)
    return train, val, sysmon, cfg


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


def build_rows(metrics_paths, study, png_workers, warmup: int = 1, data_root="data") -> pd.DataFrame:
    study = {s["res"]: s for s in study}
    out = []
    for mp in metrics_paths:
        train, val, mon, cell = read_run(mp)
        s = study[cell["res"]]
        warm = mon.get("warmup_iters", warmup)
        steady = train[train["iter"] > warm] if (train["iter"] > warm).any() else train
        data_dir = Path(data_root) / cell["res"] / ("scenes" if cell["loader"] == "nvvl" else "frames")
        last = val.iloc[-1] if len(val) else {}
        psnr_col = next((c for c in val.columns if c.startswith("model/psnr")), None)
        crop = s.get("crop")
        out.append(
            {
                "Data loader": "NVVL" if cell["loader"] == "nvvl" else ".png",
                "Input resolution": cell["res"],
                "Crop size": f"{crop[0]}x{crop[1]}" if crop else "none",
                "Numerical precision": cell["precision"],
                "PyTorch loader workers (.png only)": png_workers if cell["loader"] == "png" else "-",
                "Batch size": s["batch"],
                "CPU load": mon.get("load1_mean", float("nan")),
                "Peak host memory (%)": mon.get("peak_mem_percent", float("nan")),
                "Disk space for dataset (GB)": dir_size_bytes([data_dir]) / 1e9,
                "Per iteration data time (ms)": steady["data_ms"].mean(),
                "Step time (ms)": steady["step_ms"].median(),
                "Images/s": mon.get("images_per_s") or steady["images_per_s"].mean(),
                "TFLOP/s per GPU": mon.get("step_tflop", float("nan"))
                * (mon.get("images_per_s") or float("nan"))
                / (s["batch"] * mon.get("world_size", 1)),
                "Val PSNR (dB)": last[psnr_col] if psnr_col else float("nan"),
                "PSNR gain over bicubic (dB)": last.get("psnr_gain_over_bicubic", float("nan"))
                if len(val)
                else float("nan"),
                "GPU busy (%)": mon.get("gpu_util_mean", float("nan")),
                "Device": f"{mon.get('device', '?')} x{mon.get('world_size', 1)}",
                # extra machine-readable columns for benchmark.csv
                "cpu_percent": mon.get("cpu_percent_mean", float("nan")),
                "peak_mem_gb": mon.get("peak_mem_gb", float("nan")),
                "data_ms_p95": steady["data_ms"].quantile(0.95),
                "backend": mon.get("backend", ""),
                "iterations": int(train["iter"].max()),
                "run": str(Path(mp).parent),
            }
        )
    return pd.DataFrame(out)


def smoke_note(df: pd.DataFrame) -> str:
    """The sentence that marks a table of smoke runs ('' when every run is long enough)."""
    short = df[df["iterations"] < SMOKE_ITERS]
    if short.empty:
        return ""
    its = ", ".join(str(i) for i in sorted(set(short["iterations"])))
    return (
        f"**Smoke run**: {len(short)} of {len(df)} runs trained only {its} iteration(s) "
        f"(< {SMOKE_ITERS}; the CPU default is 2): every stage ran for real, but their speed and "
        "PSNR are not results of the study. "
    )


def aggregate(metrics_paths, study, png_workers, output, data_root="data") -> pd.DataFrame:
    """Table, CSV and plots; each file is written whole or not at all (atomic rename)."""
    df = build_rows(metrics_paths, study, png_workers, data_root=data_root)
    df["smoke"] = df["iterations"] < SMOKE_ITERS
    device = ", ".join(sorted(set(df["Device"])))
    header = (
        f"# VSRNet loader benchmark\n\n{smoke_note(df)}Measured on {device}, "
        f"{dt.date.today().isoformat()}, commit {_commit()}. CPU load = mean 1-minute load "
        "average during the steady state; peak host memory = peak PSS of the run's "
        "process tree as % of RAM; data time = mean wait for the next batch (device "
        "synchronised).\n\n"
    )
    table = df[COLUMNS].to_markdown(index=False, floatfmt=".3g")
    plot(metrics_paths, output.psnr, output.loss)
    with atomic_path(output.csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(output.table) as tmp:
        tmp.write_text(header + table + "\n")
    return df


def plot(metrics_paths, psnr_png, loss_png) -> dict:
    """Validation PSNR over training iterations (one curve per run, coloured by resolution;
    bicubic dashed per resolution) and the training loss. Returns what the PSNR plot shows:
    {"runs": {label: (iters, psnr)}, "bicubic": {res: psnr}}."""
    fig1, ax1 = plt.subplots(figsize=(7, 4))
    fig2, ax2 = plt.subplots(figsize=(7, 4))
    shown = {"runs": {}, "bicubic": {}}
    colours, markers, bicubic = {}, {}, {}
    for mp in metrics_paths:
        train, val, _, cell = read_run(mp)
        colour = colours.setdefault(cell["res"], f"C{len(colours)}")
        marker = "os^Dvx*+"[markers.setdefault(cell["res"], 0) % 8]
        markers[cell["res"]] += 1
        label = f"{cell['res']} {cell['loader']} {cell['precision']}"
        ax2.plot(train["iter"], train["loss"], label=label, color=colour, marker=marker, markersize=3)
        col = next((c for c in val.columns if c.startswith("model/psnr")), None)
        if col:
            ax1.plot(val["iter"], val[col], marker=marker, color=colour, label=label)
            shown["runs"][label] = (val["iter"].tolist(), val[col].tolist())
            bcol = col.replace("model/", "bicubic/")
            if bcol in val:  # the same val frames for every run of a res: one reference line
                bicubic.setdefault(cell["res"], []).extend(val[bcol].tolist())
            ax1.set_ylabel(col.split("/", 1)[1] + " (dB)")
    for res, values in bicubic.items():
        v = shown["bicubic"][res] = sum(values) / len(values)
        ax1.axhline(v, linestyle="--", color=colours[res], label=f"bicubic {res} ({v:.2f} dB)")
    ax1.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax1.set_xlabel("training iteration")
    ax1.set_title("validation PSNR over training")
    ax2.set_xlabel("training iteration")
    ax2.set_ylabel("MSE on Y")
    ax2.set_yscale("log")
    ax2.set_title("training loss")
    for fig, ax, path in ((fig1, ax1, psnr_png), (fig2, ax2, loss_png)):
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
    return shown


SEED_STUDY = [{"res": "540p", "crop": None, "batch": 7}, {"res": "720p", "crop": [540, 960], "batch": 4}]


def main(argv=None) -> None:
    """`python -m vsr.report --runs RUNS --data DATA --out DIR`: the table and plots from run
    folders made outside Snakemake (e.g. tools/gpu_study.sh on a machine without it)."""
    import argparse
    from types import SimpleNamespace

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--runs", type=Path, required=True, help="folder of {res}/{loader}_{precision}/")
    ap.add_argument("--data", type=Path, required=True, help="folder of {res}/scenes|frames")
    ap.add_argument("--png-workers", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    runs = sorted(str(p) for p in a.runs.glob("*/*/metrics.jsonl"))
    if not runs:
        raise SystemExit(f"{a.runs}: no */*/metrics.jsonl")
    a.out.mkdir(parents=True, exist_ok=True)
    names = ("table.md", "benchmark.csv", "psnr.png", "train_loss.png")
    out = SimpleNamespace(**{k: str(a.out / n) for k, n in zip(("table", "csv", "psnr", "loss"), names)})
    aggregate(runs, SEED_STUDY, a.png_workers, out, data_root=a.data)


if __name__ == "__main__":
    main()
