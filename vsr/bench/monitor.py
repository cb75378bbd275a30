"""NVDEC utilisation during a benchmark (NVML; nvidia-smi dmon's `dec` column)."""

from __future__ import annotations

import threading

import numpy as np
import torch


class NvdecMon:
    """NVML's NVDEC utilisation (%, mean and peak of 0.2 s samples) between begin() and end();
    empty on a CPU device or without NVML."""

    def __init__(self, device: torch.device):
        self.on = device.type == "cuda"
        self.gpu = device.index or 0
        self.samples, self.stop, self.thread = [], None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.stop is not None:
            self.stop.set()

    def _run(self):
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(self.gpu)
        while not self.stop.wait(0.2):
            self.samples.append(pynvml.nvmlDeviceGetDecoderUtilization(h)[0])

    def begin(self) -> None:
        if self.on:
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._run, daemon=True, name="nvdec-mon")
            self.thread.start()

    def end(self) -> dict:
        if self.stop is None:
            return {"nvdec_pct_mean": float("nan"), "nvdec_pct_max": float("nan")}
        self.stop.set()
        self.thread.join()
        u = np.array(self.samples[1:] or [float("nan")], dtype=float)
        return {"nvdec_pct_mean": round(float(u.mean()), 1), "nvdec_pct_max": float(u.max())}
