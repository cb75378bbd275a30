"""The study's plots: validation PSNR (bicubic per resolution beside it) and training loss."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from vsr.fs import atomic_path  # noqa: E402
from vsr.runs import Run, read_run  # noqa: E402


def psnr_label(column: str) -> str:
    """'model/psnr-Y-box4x-crop4' -> 'Y-PSNR (dB), x4, border 4'."""
    m = re.search(r"box(\d+)x-crop(\d+)", column)
    return f"Y-PSNR (dB), x{m[1]}, border {m[2]}" if m else "Y-PSNR (dB)"


def _style(runs: list[Run]) -> list[dict]:
    """Per run: colour by resolution; marker, line style and size by its place in the list, so
    that runs with identical curves (nvvl and png see the same windows) stay visible."""
    colours, out = {}, []
    for i, r in enumerate(runs):
        colour = colours.setdefault(r.cfg["res"], f"C{len(colours)}")
        size = 3 + 1.5 * (len(runs) - 1 - i)  # concentric rings where points coincide
        out.append(
            dict(color=colour, marker="osD^v<>p"[i % 8], markersize=size, fillstyle="none")
            | dict(linestyle=("-", "--", "-.", ":")[i % 4], label=r.label)
        )
    return out


def _psnr_panel(ax, runs, styles) -> dict:
    shown, bicubic = {"runs": {}, "bicubic": {}}, {}
    for r, st in zip(runs, styles):
        col = next((c for c in r.val.columns if c.startswith("model/psnr")), None)
        if not col:
            continue
        ax.plot(r.val["iter"], r.val[col], **st)
        shown["runs"][r.label] = (r.val["iter"].tolist(), r.val[col].tolist())
        ax.set_ylabel(psnr_label(col))
        bcol = col.replace("model/", "bicubic/")
        if bcol in r.val:  # the same val frames for every run of a res: one reference line
            bicubic.setdefault(r.cfg["res"], (st["color"], []))[1].extend(r.val[bcol].tolist())
    for res, (colour, values) in bicubic.items():
        v = shown["bicubic"][res] = sum(values) / len(values)
        ax.axhline(v, linestyle="--", color=colour, linewidth=1, label=f"bicubic {res} ({v:.2f} dB)")
    ax.set_title("validation PSNR over training")
    return shown


def _loss_panel(ax, runs, styles) -> dict:
    shown = {}
    for r, st in zip(runs, styles):
        ax.plot(r.train["iter"], r.train["loss"], **st)
        shown[r.label] = (r.train["iter"].tolist(), r.train["loss"].tolist())
    ax.set_ylabel("MSE on Y")
    ax.set_yscale("log")
    ax.set_title("training loss")
    return shown


def plot(runs, psnr_png, loss_png) -> dict:
    """Validation PSNR over training iterations (one curve per run, coloured by resolution;
    bicubic dashed per resolution) and the training loss. `runs`: Run objects or metrics paths.
    Returns what the plots show: {"runs": {label: (iters, psnr)}, "bicubic": {res: psnr},
    "loss": {label: (iters, loss)}, "xticks": [tick positions of both plots], "ylabel": [both],
    "legend_beside": [both legends right of their axes]}."""
    runs = [r if isinstance(r, Run) else read_run(r) for r in runs]
    styles = _style(runs)
    last = max((int(r.train["iter"].max()) for r in runs), default=1)
    shown, ticks = {}, []
    for kind, path in (("psnr", psnr_png), ("loss", loss_png)):
        fig, ax = plt.subplots(figsize=(8, 4))
        if kind == "psnr":
            shown.update(_psnr_panel(ax, runs, styles))
        else:
            shown["loss"] = _loss_panel(ax, runs, styles)
        ax.set_xlim(0, last + max(1, last // 20))
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("training iteration")
        legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ticks += [t for t in ax.get_xticks() if 0 <= t <= ax.get_xlim()[1]]
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")
        beside = legend.get_window_extent().x0 >= ax.get_window_extent().x1  # never over a line
        shown.setdefault("legend_beside", []).append(beside)
        shown.setdefault("ylabel", []).append(ax.get_ylabel())
        plt.close(fig)
    shown["xticks"] = ticks
    return shown
