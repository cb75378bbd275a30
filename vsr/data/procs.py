"""Decoding in worker processes that write whole frames into a ring shared with the trainer.

The trainer allocates one fixed ring of `slots` batches once ([slots, B, N, H*W*3/2] uint8, on the
GPU for nvdec, in shared host memory for cpu) and hands it to `processes` spawned workers (CUDA IPC
/ shared memory; the trainer owns the memory, so nothing is freed under a reader). Each worker owns
one long-lived decoder and, per task (slot, b, file, first frame), decodes the window and copies each
frame's 4:2:0 planes whole into the slot (nvdec: NV12 surface, one contiguous device copy; cpu:
I420 planes) and reports it done. The trainer crops and converts a whole batch on its own stream
(vsr.media.color). Workers run no training code and share no GIL with the trainer.
"""

from __future__ import annotations

import queue

import torch
import torch.multiprocessing as mp

from vsr.media.io import MediaError

TIMEOUT_S = 120.0  # a window that takes longer than this to decode means a stuck worker
POLL_S = 0.5  # how often a waiting trainer checks that its workers are alive


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


def _decode_nvdec(state, idx, start, n, dst):
    slot = state["slot"]
    with torch.cuda.stream(slot.stream):
        got = slot.decoder(idx.path).get_batch_frames_by_index(list(range(start, start + n)))
        if len(got) != n:
            raise MediaError(f"{idx.path}: NVDEC returned {len(got)} of frames {start}..{start + n - 1}")
        for t, f in enumerate(got):
            dst[t].copy_(torch.from_dlpack(f).reshape(-1))
    slot.stream.synchronize()


def _decode_cpu(state, idx, start, n, dst):
    hw = idx.height * idx.width
    for t, (y, u, v) in enumerate(state["backend"].read(idx, start, n)):
        d = dst[t]
        d[:hw].copy_(torch.from_numpy(y).reshape(-1))
        d[hw : hw + hw // 4].copy_(torch.from_numpy(u).reshape(-1))
        d[hw + hw // 4 :].copy_(torch.from_numpy(v).reshape(-1))


def _worker(backend, gpu, indexes, n, ring, tasks, done):
    torch.set_num_threads(1)
    state = {}
    if backend == "nvdec":
        import PyNvVideoCodec as nvc

        from vsr.data.nvdec import _Slot

        torch.cuda.set_device(gpu)
        state["slot"] = _Slot(nvc, gpu)
        decode = _decode_nvdec
    else:
        from vsr.data.pyav import PyAVBackend

        state["backend"] = PyAVBackend(threads=1)
        decode = _decode_cpu
    while True:
        task = tasks.get()
        if task is None:
            return
        s, b, f, start = task
        try:
            decode(state, indexes[f], start, n, ring[s, b])
            done.put((s, b, None))
        except Exception as e:  # reported to the trainer, which raises it
            done.put((s, b, f"{indexes[f].path}: {type(e).__name__}: {e}"))


class DecodePool:
    """`processes` decoder processes and the ring of `slots` batches they fill."""

    def __init__(
        self, backend: str, device: torch.device, indexes, n: int, batch: int, slots: int, processes: int
    ):
        first = indexes[0]
        self.h, self.w, self.n, self.batch = first.height, first.width, n, batch
        self.layout = "nv12" if backend == "nvdec" else "i420"
        shape = (slots, batch, n, self.h * self.w * 3 // 2)
        if backend == "nvdec":
            self.ring = torch.zeros(shape, dtype=torch.uint8, device=device)
        else:
            self.ring = torch.zeros(shape, dtype=torch.uint8).share_memory_()
        ctx = mp.get_context("spawn")
        self.tasks, self.done = ctx.Queue(), ctx.Queue()
        gpu = None
        if device.type == "cuda":
            gpu = device.index if device.index is not None else torch.cuda.current_device()
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(backend, gpu, indexes, n, self.ring, self.tasks, self.done),
                daemon=True,
                name=f"nvvl-decode-{i}",
            )
            for i in range(max(1, processes))
        ]
        for p in self.procs:
            p.start()
        self.pending = [0] * slots  # windows of each slot not yet reported done
        self.waited = 0.0

    def submit(self, slot: int, windows) -> None:
        self.pending[slot] += len(windows)
        for b, w in enumerate(windows):
            self.tasks.put((slot, b, w.file, w.start))

    def wait(self, slot: int) -> None:
        """Block until every window submitted to `slot` is in the ring."""
        while self.pending[slot]:
            try:
                s, _, err = self.done.get(timeout=POLL_S)
            except queue.Empty:
                self.waited += POLL_S
                dead = [f"{p.name} (exit {p.exitcode})" for p in self.procs if not p.is_alive()]
                if dead or self.waited > TIMEOUT_S:
                    why = "died: " + ", ".join(dead) if dead else f"no reply in {TIMEOUT_S:.0f} s"
                    raise MediaError(f"nvvl decode workers {why}") from None
                continue
            self.waited = 0.0
            if err:
                raise MediaError(err)
            self.pending[s] -= 1

    def planes(self, slot: int, windows, crop):
        """Cropped (y, u, v) of a filled slot: [B, N, h, w] and [B, N, h/2, w/2] views stacked."""
        h, w = crop
        y, u, v = split_planes(self.ring[slot, : len(windows)], self.h, self.w, self.layout)
        ys = [y[b, :, wi.y0 : wi.y0 + h, wi.x0 : wi.x0 + w] for b, wi in enumerate(windows)]
        us = [
            u[b, :, wi.y0 // 2 : (wi.y0 + h) // 2, wi.x0 // 2 : (wi.x0 + w) // 2]
            for b, wi in enumerate(windows)
        ]
        vs = [
            v[b, :, wi.y0 // 2 : (wi.y0 + h) // 2, wi.x0 // 2 : (wi.x0 + w) // 2]
            for b, wi in enumerate(windows)
        ]
        return torch.stack(ys), torch.stack(us), torch.stack(vs)

    def drain(self) -> None:
        for s in range(len(self.pending)):
            try:
                self.wait(s)
            except MediaError:
                self.pending[s] = 0

    def close(self) -> None:
        for _ in self.procs:
            self.tasks.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
