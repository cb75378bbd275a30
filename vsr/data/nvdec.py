"""`nvdec` backend of the nvvl loader: PyNvVideoCodec on the GPU, frames never touch the host.

A pool of long-lived SimpleDecoders per GPU (default 7, one per NVDEC engine of an H100) is
shared by as many threads; a decoder moves to a new file with `reconfigure_decoder` (~5 ms)
instead of being recreated (~60 ms). Decoded NV12 surfaces arrive via DLPack and are cropped
straight into the batch tensors on the device.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor

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


class _Slot:
    def __init__(self, nvc, gpu: int):
        self.nvc, self.gpu, self.dec, self.path = nvc, gpu, None, None

    def decoder(self, path: str):
        if self.dec is None:
            self.dec = self.nvc.SimpleDecoder(
                path, gpu_id=self.gpu, use_device_memory=True,
                output_color_type=self.nvc.OutputColorType.NATIVE,
            )
        elif self.path != path:
            try:
                self.dec.reconfigure_decoder(path)
            except Exception:  # a source the cached session cannot take: start a new one
                self.dec = None
                return self.decoder(path)
        self.path = path
        return self.dec


class NvdecBackend:
    name = "nvdec"

    def __init__(self, device: torch.device, decoders: int = 7):
        import PyNvVideoCodec as nvc

        device = torch.device(device)
        gpu = device.index if device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", gpu)
        self.slots: queue.Queue[_Slot] = queue.Queue()
        for _ in range(max(1, decoders)):
            self.slots.put(_Slot(nvc, gpu))
        self.pool = ThreadPoolExecutor(max(1, decoders), thread_name_prefix="nvdec")

    def frames(self, idx: VideoIndex, start: int, n: int) -> list[torch.Tensor]:
        """Frames start..start+n-1 as NV12 uint8 tensors [H*3/2, W] on the device (copies)."""
        slot = self.slots.get()
        try:
            torch.cuda.set_device(self.device)
            dec = slot.decoder(idx.path)
            got = dec.get_batch_frames_by_index(list(range(start, start + n)))
            if len(got) != n:
                raise MediaError(f"{idx.path}: NVDEC returned {len(got)} of frames "
                                 f"{start}..{start + n - 1}")
            out = [torch.from_dlpack(f).reshape(idx.height * 3 // 2, idx.width).clone()
                   for f in got]
            torch.cuda.current_stream(self.device).synchronize()  # surfaces get reused
            return out
        finally:
            self.slots.put(slot)

    def decode_batch(self, windows: list[Window], indexes: list[VideoIndex], n: int, crop):
        h, w = crop
        B = len(windows)
        y = torch.empty((B, n, h, w), dtype=torch.uint8, device=self.device)
        u = torch.empty((B, n, h // 2, w // 2), dtype=torch.uint8, device=self.device)
        v = torch.empty_like(u)

        def one(b: int, win: Window):
            idx = indexes[win.file]
            H = idx.height
            nv12 = torch.stack(self.frames(idx, win.start, n))  # [n, H*3/2, W]
            uv = nv12[:, H:].reshape(n, H // 2, idx.width // 2, 2)
            ys, xs, yc, xc = win.y0, win.x0, win.y0 // 2, win.x0 // 2
            y[b] = nv12[:, ys : ys + h, xs : xs + w]
            u[b] = uv[:, yc : yc + h // 2, xc : xc + w // 2, 0]
            v[b] = uv[:, yc : yc + h // 2, xc : xc + w // 2, 1]
            torch.cuda.current_stream(self.device).synchronize()

        for f in [self.pool.submit(one, b, win) for b, win in enumerate(windows)]:
            f.result()
        return y, u, v

    def close(self) -> None:
        self.pool.shutdown(wait=True)
