"""The `nvvl` loader: random-access frame sequences straight from .mp4.

Shaped like NVIDIA's NVVL (`VideoDataset(filenames, sequence_length, ...)` and a
`VideoLoader(dataset, batch_size, ...)` that yields batches on the device), built on today's
libraries: backend `nvdec` (PyNvVideoCodec, frames stay on the GPU) or `cpu` (PyAV, threaded,
pinned memory, non-blocking copies). Both decode 4:2:0 planes and convert them with the one
colour conversion of `vsr.data.color`, so they return the PNG loader's pixels.
"""

from __future__ import annotations

import os
import queue
import threading

import torch

from vsr.data import nvdec
from vsr.data.color import matrix_from_tags, yuv420_to_rgb
from vsr.data.index import build_index
from vsr.data.pyav import PyAVBackend
from vsr.data.sampler import WindowSampler
from vsr.media.io import MediaError


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "nvdec" if device.type == "cuda" and nvdec.available() else "cpu"
    if backend == "nvdec" and not (device.type == "cuda" and nvdec.available()):
        raise RuntimeError("nvvl backend nvdec needs a CUDA device and PyNvVideoCodec")
    return backend


class VideoDataset:
    """Every window of `sequence_length` frames of every file. Indexes are built (and every file
    checked) here, so a bad file fails at construction, never mid-epoch."""

    def __init__(self, filenames, sequence_length: int, device="cpu", backend="auto",
                 index_cache_dir=None, decoders: int = 7, cpu_threads: int = 4):
        self.filenames = [os.fspath(f) for f in filenames]
        if not self.filenames:
            raise MediaError("nvvl: no video files given")
        self.n = sequence_length
        self.device = torch.device(device)
        self.indexes = [build_index(f, index_cache_dir) for f in self.filenames]
        first = self.indexes[0]
        for ix in self.indexes:
            if (ix.width, ix.height) != (first.width, first.height):
                raise MediaError(f"{ix.path}: {ix.width}x{ix.height} differs from "
                                 f"{first.width}x{first.height} of {first.path}")
            if ix.frames < self.n:
                raise MediaError(f"{ix.path}: {ix.frames} frames, shorter than a sequence "
                                 f"of {self.n}")
        self.frame_hw = (first.height, first.width)
        self.matrix, self.full_range = matrix_from_tags(first.colorspace, first.color_range)
        self.backend_name = resolve_backend(backend, self.device)
        if self.backend_name == "nvdec":
            self.backend = nvdec.NvdecBackend(self.device, decoders)
        else:
            self.backend = PyAVBackend(cpu_threads, pin_memory=self.device.type == "cuda")

    @property
    def lengths(self) -> list[int]:
        return [ix.frames for ix in self.indexes]

    def load(self, windows, crop, dtype=torch.float32) -> torch.Tensor:
        """Decode `windows` into [B, N, 3, h, w] on the device, normalised to [0, 1]."""
        y, u, v = self.backend.decode_batch(windows, self.indexes, self.n, crop)
        if y.device != self.device:
            y, u, v = (t.to(self.device, non_blocking=True) for t in (y, u, v))
        return yuv420_to_rgb(y, u, v, self.matrix, self.full_range, out_dtype=dtype)

    def close(self) -> None:
        self.backend.close()


class VideoLoader:
    """Batches of the sampler's windows, decoded `prefetch` batches ahead in a background
    thread. Yields [B, N, 3, h, w] tensors of `dtype` in [0, 1] on the dataset's device."""

    def __init__(self, dataset: VideoDataset, batch_size: int, sampler: WindowSampler,
                 dtype=torch.float32, prefetch: int = 2, drop_last: bool = True):
        self.dataset, self.batch_size, self.sampler = dataset, batch_size, sampler
        self.dtype, self.prefetch, self.drop_last = dtype, prefetch, drop_last

    def __len__(self) -> int:
        return self.sampler.num_batches(self.batch_size, self.drop_last)

    def _load(self, windows):
        return self.dataset.load(windows, self.sampler.crop, self.dtype)

    def __iter__(self):
        batches = self.sampler.batches(self.batch_size, self.drop_last)
        if self.prefetch <= 0:
            for b in batches:
                yield self._load(b)
            return
        q: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()
        done = object()

        def work():
            try:
                for b in batches:
                    if stop.is_set():
                        return
                    q.put(self._load(b))
                q.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                q.put(e)

        t = threading.Thread(target=work, daemon=True, name="nvvl-prefetch")
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(0.05)
