"""A finished training run as the report reads it: its records, monitor summary and settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Run:
    path: Path  # the run folder
    train: pd.DataFrame
    val: pd.DataFrame
    sysmon: dict
    cfg: dict  # the settings the run trained with (final.pt)

    @property
    def label(self) -> str:
        return f"{self.cfg['res']} {self.cfg['loader']} {self.cfg['precision']}"


def read_run(metrics_path: str | Path) -> Run:
    import torch

    p = Path(metrics_path)
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    train = pd.DataFrame([r for r in rows if r["kind"] == "train"])
    val = pd.DataFrame([r for r in rows if r["kind"] == "val"])
    sysmon = json.loads((p.parent / "sysmon.json").read_text())
    cfg = torch.load(p.parent / "final.pt", map_location="cpu", weights_only=True)["cfg"]
    return Run(p.parent, train, val, sysmon, cfg)
