"""The `nvvl` loader: random-access frame sequences straight from .mp4.

Shaped like NVIDIA's NVVL (`VideoDataset(filenames, sequence_length, ...)` and a
`VideoLoader(dataset, batch_size, ...)` that yields batches on the device), built on today's
libraries: backend `nvdec` (PyNvVideoCodec, frames stay on the GPU) or `cpu` (PyAV, threaded,
pinned memory, non-blocking copies). Both decode 4:2:0 planes and convert them with the one
colour conversion of `vsr.media.color`, so they return the PNG loader's pixels.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import deque
from contextlib import nullcontext

import torch

from vsr.media.color import matrix_from_tags, yuv420_to_rgb
from vsr.data import nvdec
from vsr.data.index import build_index
from vsr.data.procs import DecodePool
from vsr.data.pyav import PyAVBackend
from vsr.data.sampler import WindowSampler
from vsr.media.io import MediaError

# Longest time (s) a loader thread may keep the GIL while the training thread waits for it.
# Python's default, 5 ms, is what fetching a ready batch cost (median 1.5 ms on an H200):
# taking it from the queue wakes the producer, which then holds the GIL.
GIL_SWITCH_S = 1e-4


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "nvdec" if device.type == "cuda" and nvdec.available() else "cpu"
    if backend == "nvdec" and not (device.type == "cuda" and nvdec.available()):
        raise RuntimeError("nvvl backend nvdec needs a CUDA device and PyNvVideoCodec")
    return backend


class VideoDataset:
    """Every window of `sequence_length` frames of every file. Indexes are built (and every file
    checked) here, so a bad file fails at construction, never mid-epoch."""

    def __init__(
        self,
        filenames,
        sequence_length: int,
        device="cpu",
        backend="auto",
        index_cache_dir=None,
        decoders: int = 7,
        cpu_threads: int = 4,
        processes: int = 0,
    ):
        self.filenames = [os.fspath(f) for f in filenames]
        if not self.filenames:
            raise MediaError("nvvl: no video files given")
        self.n = sequence_length
        self.device = torch.device(device)
        self.indexes = [build_index(f, index_cache_dir) for f in self.filenames]
        first = self.indexes[0]
        for ix in self.indexes:
            if (ix.width, ix.height) != (first.width, first.height):
                raise MediaError(
                    f"{ix.path}: {ix.width}x{ix.height} differs from "
                    f"{first.width}x{first.height} of {first.path}"
                )
            if ix.frames < self.n:
                raise MediaError(f"{ix.path}: {ix.frames} frames, shorter than a sequence of {self.n}")
        self.frame_hw = (first.height, first.width)
        self.matrix, self.full_range = matrix_from_tags(first.colorspace, first.color_range)
        self.backend_name = resolve_backend(backend, self.device)
        self.processes = processes  # > 0: VideoLoader decodes in that many worker processes
        if processes > 0:
            self.backend = None
        elif self.backend_name == "nvdec":
            self.backend = nvdec.NvdecBackend(self.device, decoders)
        else:
            self.backend = PyAVBackend(cpu_threads, pin_memory=self.device.type == "cuda")

    @property
    def lengths(self) -> list[int]:
        return [ix.frames for ix in self.indexes]

    def start(self, windows, crop, spans=None):
        """Start decoding `windows` (the decoders work in the background; `spans`: each
        window's run, see WindowSampler.run_span); pass the result to `finish`."""
        spans = spans or [(w.start, w.start) for w in windows]
        return self.backend.start_batch(windows, self.indexes, self.n, crop, spans)

    def finish(self, pending, dtype=torch.float32) -> torch.Tensor:
        """Wait for a started batch and convert it: [B, N, 3, h, w] of `dtype` in [0, 1] on the
        device."""
        y, u, v = self.backend.finish_batch(pending)
        return self.convert(y, u, v, dtype)

    def convert(self, y, u, v, dtype) -> torch.Tensor:
        if y.device != self.device:
            y, u, v = (t.to(self.device, non_blocking=True) for t in (y, u, v))
        return yuv420_to_rgb(y, u, v, self.matrix, self.full_range, out_dtype=dtype)

    def load(self, windows, crop, dtype=torch.float32) -> torch.Tensor:
        """Decode `windows` into [B, N, 3, h, w] on the device, normalised to [0, 1]."""
        return self.finish(self.start(windows, crop), dtype)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class VideoLoader:
    """Batches of the sampler's windows. A background thread keeps `prefetch` batches ahead:
    the windows of the next batches are already queued on the decoders while the current one
    is converted, so no decoder idles at batch boundaries. On CUDA the conversion runs on the
    loader's own stream; the training stream only waits for that batch's event (no device-wide
    synchronisation). Yields [B, N, 3, h, w] tensors of `dtype` in [0, 1] on the device."""

    def __init__(
        self,
        dataset: VideoDataset,
        batch_size: int,
        sampler: WindowSampler,
        dtype=torch.float32,
        prefetch: int = 2,
        drop_last: bool = True,
    ):
        self.dataset, self.batch_size, self.sampler = dataset, batch_size, sampler
        self.dtype, self.prefetch, self.drop_last = dtype, prefetch, drop_last
        cuda = dataset.device.type == "cuda"
        self.stream = torch.cuda.Stream(dataset.device) if cuda and prefetch > 0 else None
        self.pool = None  # DecodePool, started on first use when dataset.processes > 0

    def __len__(self) -> int:
        return self.sampler.num_batches(self.batch_size, self.drop_last)

    def _produce(self, batches, put, stop) -> None:
        """Decode ahead: up to prefetch + 1 batches are started before the oldest is finished."""
        crop, pending = self.sampler.crop, deque()

        def finish():
            x = self.dataset.finish(pending.popleft(), self.dtype)
            event = None
            if self.stream is not None:
                event = torch.cuda.Event()
                event.record(self.stream)
            put((x, event))

        ctx = torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()
        with ctx:
            for b in batches:
                if stop.is_set():
                    return
                pending.append(self.dataset.start(b, crop, [self.sampler.run_span(w) for w in b]))
                if len(pending) > self.prefetch:
                    finish()
            while pending and not stop.is_set():
                finish()

    def __iter__(self):
        if self.dataset.processes > 0:
            yield from self._iter_processes()
            return
        batches = self.sampler.batches(self.batch_size, self.drop_last)
        if self.prefetch <= 0:
            for b in batches:
                yield self.dataset.load(b, self.sampler.crop, self.dtype)
            return
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, GIL_SWITCH_S))
        try:
            yield from self._iter_threads(batches)
        finally:
            sys.setswitchinterval(switch)

    def _iter_threads(self, batches):
        """Batches from a producer thread that keeps `prefetch` of them ahead."""
        q: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()
        done = object()

        def work():
            try:
                self._produce(batches, q.put, stop)
                q.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                q.put(e)

        t = threading.Thread(target=work, daemon=True, name="nvvl-prefetch")
        t.start()
        try:
            while (item := q.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                x, event = item
                if event is not None:  # order the consumer's stream after the conversion
                    current = torch.cuda.current_stream(x.device)
                    current.wait_event(event)
                    x.record_stream(current)  # made on the loader's stream, used and freed here
                yield x
        finally:
            stop.set()
            while t.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(0.05)

    def _iter_processes(self):
        """Batches decoded by worker processes into the shared ring; converted here, on the
        consumer's current stream. One slot is kept spare so that a slot is refilled only once
        the conversion that read it (launched a batch earlier) has run."""
        ds = self.dataset
        if self.pool is None:
            self.pool = DecodePool(
                ds.backend_name, ds.device, ds.indexes, ds.n, self.batch_size, self.prefetch + 2, ds.processes
            )
        pool, crop = self.pool, self.sampler.crop
        events = [None] * len(pool.pending)
        free, inflight = deque(range(len(pool.pending))), deque()
        batches = self.sampler.batches(self.batch_size, self.drop_last)

        def fill():
            while len(free) > 1:
                wins = next(batches, None)
                if wins is None:
                    return
                s = free.popleft()
                if events[s] is not None:
                    events[s].synchronize()
                pool.submit(s, wins, [self.sampler.run_span(w) for w in wins])
                inflight.append((s, wins))

        try:
            fill()
            while inflight:
                s, wins = inflight.popleft()
                pool.wait(s)
                x = ds.convert(*pool.planes(s, wins, crop), self.dtype)
                if x.device.type == "cuda" and pool.ring.device.type == "cuda":
                    events[s] = torch.cuda.Event()
                    events[s].record()
                free.append(s)
                fill()
                yield x
        finally:
            pool.drain()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
