"""System measurements during a run's steady state: CPU use of the run's process tree (100% =
one core), the system's 1-minute load average, peak host memory, GPU utilisation and memory."""

from __future__ import annotations

import os
import threading
import time

import psutil


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


MIN_TAIL = 0.02  # s: a shorter tail at stop() is not sampled (too short for a CPU rate)


class SysMon:
    """Samples every `interval` seconds in a thread between start() and stop(), and the tail
    since the last sample at stop(); means are over time (each sample weighted by its span)."""

    def __init__(self, interval: float = 0.5, gpu_index: int | None = None):
        self.interval, self.gpu_index = interval, gpu_index
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = None
        self.started = False
        self.proc = psutil.Process(os.getpid())
        self.known: dict[int, psutil.Process] = {self.proc.pid: self.proc}
        self.total = psutil.virtual_memory().total

    def _tree(self) -> list[psutil.Process]:
        """The run's processes, each the same psutil object from sample to sample (cpu_percent
        measures since that object's previous call; a new one is primed and counts from now)."""
        procs = [self.proc]
        for c in _children(self.proc):
            if c.pid not in self.known:
                self.known[c.pid] = c
                try:
                    c.cpu_percent(None)
                except psutil.Error:
                    continue
            procs.append(self.known[c.pid])
        return procs

    def _sample(self, nv, handle) -> dict:
        procs = self._tree()
        cpu, mem = 0.0, 0
        for p in procs:
            try:
                cpu += p.cpu_percent(None)
                try:
                    mem += p.memory_full_info().pss
                except (psutil.AccessDenied, AttributeError):
                    mem += p.memory_info().rss
            except psutil.Error:
                pass
        s = {
            "t": time.time(),
            "load1": os.getloadavg()[0],
            "cpu_percent": cpu,
            "mem_bytes": mem,
            "sys_mem_percent": psutil.virtual_memory().percent,
        }
        if handle is not None:
            u = nv.nvmlDeviceGetUtilizationRates(handle)
            s["gpu_util"] = float(u.gpu)
            s["gpu_mem_bytes"] = float(nv.nvmlDeviceGetMemoryInfo(handle).used)
        return s

    def _run(self):
        nv = _nvml() if self.gpu_index is not None else None
        handle = nv.nvmlDeviceGetHandleByIndex(self.gpu_index) if nv else None
        self.proc.cpu_percent(None)  # prime; children are primed as they are first seen
        self._tree()
        last = time.time()
        while True:
            stopped = self._stop.wait(self.interval)
            if stopped and time.time() - last < MIN_TAIL:
                return
            s = self._sample(nv, handle)  # at stop: the tail since the last sample (a short run's only one)
            s["dt"], last = s["t"] - last, s["t"]
            self.samples.append(s)
            if stopped:
                return

    def start(self) -> SysMon:
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="sysmon")
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.summary()

    def summary(self) -> dict:
        s = self.samples
        if not s:
            return {"samples": 0}
        seconds = sum(x["dt"] for x in s)
        mean = lambda k: sum(x[k] * x["dt"] for x in s) / seconds  # noqa: E731  (over time)
        out = {
            "samples": len(s),
            "seconds": seconds,
            "load1_mean": mean("load1"),
            "load1_max": max(x["load1"] for x in s),
            "cpu_percent_mean": mean("cpu_percent"),
            "peak_mem_gb": max(x["mem_bytes"] for x in s) / 1e9,
            "peak_mem_percent": 100.0 * max(x["mem_bytes"] for x in s) / self.total,
            "peak_sys_mem_percent": max(x["sys_mem_percent"] for x in s),
            "cpu_count": psutil.cpu_count(),
        }
        if "gpu_util" in s[0]:
            out["gpu_util_mean"] = mean("gpu_util")
            out["gpu_mem_peak_gb"] = max(x["gpu_mem_bytes"] for x in s) / 1e9
        return out
