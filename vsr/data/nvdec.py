"""`nvdec` backend of the nvvl loader: PyNvVideoCodec on the GPU, frames never touch the host.

`Decoder` is the one place NVDEC decoding is written: a long-lived SimpleDecoder and its CUDA
stream, moved between files with `reconfigure_decoder` (~5 ms) instead of being recreated
(~60 ms), decoding a run of frames into one NV12 tensor. `RunCache` keeps recent runs so that
each run of the sampler is decoded once for all of its windows. `NvdecBackend` shares a pool
of decoders (default 7, one per NVDEC engine of an H100/H200) among as many threads of the
trainer's process; the decoder worker processes (vsr.data.procs) use `Decoder` and `RunCache`
too.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from vsr.data.index import VideoIndex
from vsr.data.sampler import Window
from vsr.media.io import MediaError


def available() -> bool:
    try:
        import PyNvVideoCodec  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def split_planes(buf: torch.Tensor, h: int, w: int, layout: str):
    """[..., H*W*3/2] frames -> (y [..., H, W], u, v [..., H/2, W/2]) views."""
    lead = buf.shape[:-1]
    y = buf[..., : h * w].unflatten(-1, (h, w))
    if layout == "nv12":
        uv = buf[..., h * w :].unflatten(-1, (h // 2, w // 2, 2))
        return y, uv[..., 0], uv[..., 1]
    q = h * w // 4
    u = buf[..., h * w : h * w + q].reshape(*lead, h // 2, w // 2)
    v = buf[..., h * w + q :].reshape(*lead, h // 2, w // 2)
    return y, u, v


def crop_planes(frames, windows, frame_hw, crop, layout: str):
    """Stack the crops of every window's frames ([N, H*W*3/2] each) into (y [B, N, h, w],
    u, v [B, N, h/2, w/2]): three gathers for the whole batch."""
    (H, W), (h, w) = frame_hw, crop
    ys, us, vs = [], [], []
    for f, wi in zip(frames, windows):
        y, u, v = split_planes(f, H, W, layout)
        ys.append(y[:, wi.y0 : wi.y0 + h, wi.x0 : wi.x0 + w])
        us.append(u[:, wi.y0 // 2 : (wi.y0 + h) // 2, wi.x0 // 2 : (wi.x0 + w) // 2])
        vs.append(v[:, wi.y0 // 2 : (wi.y0 + h) // 2, wi.x0 // 2 : (wi.x0 + w) // 2])
    return torch.stack(ys), torch.stack(us), torch.stack(vs)


class Decoder:
    """One long-lived decoder and the CUDA stream all of its work runs on."""

    def __init__(self, gpu: int):
        import PyNvVideoCodec as nvc

        self.nvc, self.gpu, self.dec, self.path = nvc, gpu, None, None
        self.stream = torch.cuda.Stream(torch.device("cuda", gpu))

    def _open(self, path: str):
        if self.dec is not None and self.path != path:
            try:
                self.dec.reconfigure_decoder(path)
            except Exception:  # a source the cached session cannot take: start a new one
                self.dec = None
        if self.dec is None:
            self.dec = self.nvc.SimpleDecoder(
                path,
                gpu_id=self.gpu,
                cuda_stream=self.stream.cuda_stream,
                use_device_memory=True,
                output_color_type=self.nvc.OutputColorType.NATIVE,
            )
        self.path = path
        return self.dec

    def decode(self, idx: VideoIndex, first: int, count: int) -> torch.Tensor:
        """Frames first..first+count-1 as one NV12 tensor [count, H*W*3/2] uint8 that this
        call allocated (the decoder's own surfaces are reused), complete on return."""
        torch.cuda.set_device(self.gpu)
        with torch.cuda.stream(self.stream):
            got = self._open(idx.path).get_batch_frames_by_index(list(range(first, first + count)))
            if len(got) != count:
                raise MediaError(
                    f"{idx.path}: NVDEC returned {len(got)} of frames {first}..{first + count - 1}"
                )
            out = torch.empty((count, idx.height * idx.width * 3 // 2), dtype=torch.uint8, device=self.gpu)
            for t, f in enumerate(got):
                out[t].copy_(torch.from_dlpack(f).reshape(-1))
        self.stream.synchronize()
        return out


class RunCache:
    """The frames of the last `capacity` runs, each decoded once (by `decode(idx, first,
    count)`) however many threads ask for it; thread-safe."""

    def __init__(self, decode, capacity: int = 32):
        self.decode, self.capacity = decode, capacity
        self.lock, self.runs = threading.Lock(), OrderedDict()

    def window(self, idx: VideoIndex, start: int, n: int, span: tuple[int, int]) -> torch.Tensor:
        """Frames start..start+n-1 ([n, frame bytes] view) of the run first..last+n-1."""
        first, last = span
        key = (idx.path, first, last)
        with self.lock:
            fut = self.runs.get(key)
            mine = fut is None
            if mine:
                fut = self.runs[key] = Future()
                while len(self.runs) > self.capacity:
                    self.runs.popitem(last=False)
            else:
                self.runs.move_to_end(key)
        if mine:
            try:
                fut.set_result(self.decode(idx, first, last + n - first))
            except BaseException as e:
                fut.set_exception(e)
                with self.lock:
                    self.runs.pop(key, None)
        return fut.result()[start - first : start - first + n]


class NvdecBackend:
    name = "nvdec"
    layout = "nv12"

    def __init__(self, device: torch.device, decoders: int = 7, cache_runs: int = 64):
        device = torch.device(device)
        gpu = device.index if device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", gpu)
        self.free: queue.Queue[Decoder] = queue.Queue()
        for _ in range(max(1, decoders)):
            self.free.put(Decoder(gpu))
        self.cache = RunCache(self._decode, cache_runs)
        self.pool = ThreadPoolExecutor(max(1, decoders), thread_name_prefix="nvdec")

    def _decode(self, idx: VideoIndex, first: int, count: int) -> torch.Tensor:
        dec = self.free.get()
        try:
            return dec.decode(idx, first, count)
        finally:
            self.free.put(dec)

    def frames(self, idx: VideoIndex, start: int, n: int) -> list[torch.Tensor]:
        """Frames start..start+n-1 as NV12 uint8 tensors [H*3/2, W] on the device."""
        return list(self._decode(idx, start, n).view(n, idx.height * 3 // 2, idx.width))

    def start_batch(self, windows: list[Window], indexes: list[VideoIndex], n: int, crop, spans):
        """Submit every window (its run decoded unless cached); `finish_batch` waits."""
        futures = [
            self.pool.submit(self.cache.window, indexes[w.file], w.start, n, span)
            for w, span in zip(windows, spans)
        ]
        first = indexes[windows[0].file]
        return windows, futures, (first.height, first.width), crop

    def finish_batch(self, pending):
        """(y, u, v) crops of a started batch, gathered on the current stream."""
        windows, futures, frame_hw, crop = pending
        frames = [f.result() for f in futures]
        stream = torch.cuda.current_stream(self.device)
        for f in frames:  # read here, allocated on a decoder's stream
            f.record_stream(stream)
        return crop_planes(frames, windows, frame_hw, crop, self.layout)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
