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
    """One long-lived decoder and the CUDA stream all of its work (decode, copies) runs on."""

    def __init__(self, nvc, gpu: int):
        self.nvc, self.gpu, self.dec, self.path = nvc, gpu, None, None
        self.stream = torch.cuda.Stream(torch.device("cuda", gpu))

    def decoder(self, path: str):
        if self.dec is None:
            self.dec = self.nvc.SimpleDecoder(
                path,
                gpu_id=self.gpu,
                cuda_stream=self.stream.cuda_stream,
                use_device_memory=True,
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

    def _decode(self, idx: VideoIndex, start: int, n: int, sink) -> None:
        """Decode frames start..start+n-1 on a free decoder and hand each NV12 surface
        ([H*3/2, W] uint8 on the device) to `sink(t, nv12)` on that decoder's stream; waits only
        for that stream (surfaces are reused), never for the training stream."""
        slot = self.slots.get()
        try:
            torch.cuda.set_device(self.device)
            with torch.cuda.stream(slot.stream):
                got = slot.decoder(idx.path).get_batch_frames_by_index(list(range(start, start + n)))
                if len(got) != n:
                    raise MediaError(
                        f"{idx.path}: NVDEC returned {len(got)} of frames {start}..{start + n - 1}"
                    )
                for t, f in enumerate(got):
                    sink(t, torch.from_dlpack(f).reshape(idx.height * 3 // 2, idx.width))
            slot.stream.synchronize()
        finally:
            self.slots.put(slot)

    def frames(self, idx: VideoIndex, start: int, n: int) -> list[torch.Tensor]:
        """Frames start..start+n-1 as NV12 uint8 tensors [H*3/2, W] on the device (copies)."""
        out = [None] * n

        def keep(t, nv12):
            out[t] = nv12.clone()

        self._decode(idx, start, n, keep)
        return out

    def start_batch(self, windows: list[Window], indexes: list[VideoIndex], n: int, crop):
        """Submit every window to the decoder pool; returns (planes, futures): the planes
        (y, u, v) are complete once every future is done."""
        h, w = crop
        B = len(windows)
        y = torch.empty((B, n, h, w), dtype=torch.uint8, device=self.device)
        u = torch.empty((B, n, h // 2, w // 2), dtype=torch.uint8, device=self.device)
        v = torch.empty_like(u)

        def one(b: int, win: Window):
            idx = indexes[win.file]
            H, ys, xs, yc, xc = idx.height, win.y0, win.x0, win.y0 // 2, win.x0 // 2

            def crop_into(t, nv12):  # straight from the decoder's surface into the batch
                uv = nv12[H:].view(H // 2, idx.width // 2, 2)
                y[b, t] = nv12[ys : ys + h, xs : xs + w]
                u[b, t] = uv[yc : yc + h // 2, xc : xc + w // 2, 0]
                v[b, t] = uv[yc : yc + h // 2, xc : xc + w // 2, 1]

            self._decode(idx, win.start, n, crop_into)

        return (y, u, v), [self.pool.submit(one, b, win) for b, win in enumerate(windows)]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
