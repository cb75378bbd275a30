"""`cpu` backend of the nvvl loader: PyAV decode of exact frame windows, threaded over windows."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import av
import torch

from vsr.data.index import VideoIndex
from vsr.data.sampler import Window
from vsr.media.io import MediaError, open_video
from vsr.media.transcode import decoded_planes


class PyAVBackend:
    name = "cpu"

    def __init__(self, threads: int = 4, open_files: int = 8, pin_memory: bool = False):
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="pyav")
        self.local = threading.local()
        self.open_files = open_files
        self.pin = pin_memory

    def _container(self, path: str):
        cache = getattr(self.local, "cache", None)
        if cache is None:
            cache = self.local.cache = OrderedDict()
        if path in cache:
            cache.move_to_end(path)
            return cache[path]
        c = open_video(path)
        c.streams.video[0].thread_type = "SLICE"
        cache[path] = c
        while len(cache) > self.open_files:
            cache.popitem(last=False)[1].close()
        return c

    def read(self, idx: VideoIndex, start: int, n: int):
        """Frames start..start+n-1 of `idx` as a list of (y, u, v) numpy planes, exact."""
        c = self._container(idx.path)
        s = c.streams.video[0]
        k = idx.keyframe_before(start)
        c.seek(idx.pts[k], stream=s, backward=True, any_frame=False)
        pos = idx.position
        out = [None] * n
        got = 0
        try:
            for frame in c.decode(s):
                i = pos.get(frame.pts)
                if i is None or i < start:
                    continue
                if i >= start + n:
                    break
                out[i - start] = decoded_planes(frame)
                got += 1
                if got == n:
                    break
        except av.error.FFmpegError as e:
            raise MediaError(f"{idx.path}: decode failed at frame {start} ({e.strerror or e})") from None
        if got != n:
            raise MediaError(f"{idx.path}: frames {start}..{start + n - 1} did not all decode")
        return out

    def run_tensor(self, idx: VideoIndex, first: int, count: int) -> torch.Tensor:
        """Frames first..first+count-1 as one I420 tensor [count, H*W*3/2] uint8."""
        hw = idx.height * idx.width
        out = torch.empty((count, hw * 3 // 2), dtype=torch.uint8)
        for t, (y, u, v) in enumerate(self.read(idx, first, count)):
            out[t, :hw] = torch.from_numpy(y).reshape(-1)
            out[t, hw : hw + hw // 4] = torch.from_numpy(u).reshape(-1)
            out[t, hw + hw // 4 :] = torch.from_numpy(v).reshape(-1)
        return out

    def start_batch(self, windows: list[Window], indexes: list[VideoIndex], n: int, crop, spans=None):
        """Submit every window to the thread pool; `finish_batch` returns its (pinned) host
        planes (y, u, v). Each window is decoded exactly (runs are not cached on the CPU)."""
        h, w = crop
        B = len(windows)
        y = torch.empty((B, n, h, w), dtype=torch.uint8, pin_memory=self.pin)
        u = torch.empty((B, n, h // 2, w // 2), dtype=torch.uint8, pin_memory=self.pin)
        v = torch.empty((B, n, h // 2, w // 2), dtype=torch.uint8, pin_memory=self.pin)

        def one(b: int, win: Window):
            planes = self.read(indexes[win.file], win.start, n)
            ys, xs, yc, xc = win.y0, win.x0, win.y0 // 2, win.x0 // 2
            for t, (py, pu, pv) in enumerate(planes):
                y[b, t] = torch.from_numpy(py[ys : ys + h, xs : xs + w])
                u[b, t] = torch.from_numpy(pu[yc : yc + h // 2, xc : xc + w // 2])
                v[b, t] = torch.from_numpy(pv[yc : yc + h // 2, xc : xc + w // 2])

        return (y, u, v), [self.pool.submit(one, b, win) for b, win in enumerate(windows)]

    def finish_batch(self, pending):
        planes, futures = pending
        for f in futures:
            f.result()
        return planes

    def close(self) -> None:
        self.pool.shutdown(wait=True)
