"""Decoding in worker processes that write whole frames into a ring shared with the trainer.

The trainer allocates one fixed ring of `slots` batches once ([slots, B, N, H*W*3/2] uint8, on the
GPU for nvdec, in shared host memory for cpu) and hands it to `processes` spawned workers (CUDA IPC
/ shared memory; the trainer owns the memory, so nothing is freed under a reader). Each worker owns
one long-lived decoder (vsr.data.nvdec.Decoder, or PyAV) and a cache of recently decoded runs;
a task (slot, b, file, start, run) goes to the worker that owns its run, which decodes the run
once, copies the window's 4:2:0 frames whole into the slot and reports it done. The trainer crops
and converts a whole batch on its own stream (vsr.media.color). Workers run no training code,
share no GIL with the trainer, and exit when the trainer dies (they watch their parent).

Shutdown is ordered: every worker drops its view of the ring and exits, then the trainer frees
the ring, so PyTorch never sees a producer leave before its consumers released shared memory.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref

import torch
import torch.multiprocessing as mp

from vsr.data.nvdec import crop_planes
from vsr.media.io import MediaError

TIMEOUT_S = 120.0  # a window that takes longer than this to decode means a stuck worker
POLL_S = 0.5  # how often a waiting trainer checks that its workers are alive
WORKER_CACHE_RUNS = 16  # runs each worker keeps decoded (a run's windows arrive within a block)


def _watch_parent(parent: int) -> None:
    """End this worker as soon as its parent is gone (killed, even with SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(0)


def _open_decoder(backend: str, gpu):
    """(decode(idx, first, count) -> [count, frame bytes] tensor, copy(dst, src))."""
    if backend == "nvdec":
        from vsr.data.nvdec import Decoder

        torch.cuda.set_device(gpu)
        dec = Decoder(gpu)

        def copy(dst, src):
            with torch.cuda.stream(dec.stream):
                dst.copy_(src)
            dec.stream.synchronize()

        return dec.decode, copy
    from vsr.data.pyav import PyAVBackend

    return PyAVBackend(threads=1).run_tensor, lambda dst, src: dst.copy_(src)


def _worker(backend, gpu, indexes, n, tasks, done, parent):
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    from vsr.data.nvdec import RunCache

    decode, copy = _open_decoder(backend, gpu)
    cache = RunCache(decode, WORKER_CACHE_RUNS)
    ring = tasks.get()  # the shared ring arrives first; this frame holds the only reference
    while True:
        task = tasks.get()
        if task is None:
            break
        s, b, f, start, span = task
        try:
            copy(ring[s, b], cache.window(indexes[f], start, n, span))
            done.put((s, b, None))
        except Exception as e:  # reported to the trainer, which raises it
            done.put((s, b, f"{indexes[f].path}: {type(e).__name__}: {e}"))
    del ring, cache
    if backend == "nvdec":
        torch.cuda.synchronize()
    done.put(None)  # released: the trainer may free the ring


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
        self.done = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(max(1, processes))]
        gpu = None
        if device.type == "cuda":
            gpu = device.index if device.index is not None else torch.cuda.current_device()
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(backend, gpu, indexes, n, q, self.done, os.getpid()),
                daemon=True,
                name=f"nvvl-decode-{i}",
            )
            for i, q in enumerate(self.tasks)
        ]
        for p, q in zip(self.procs, self.tasks):
            p.start()
            q.put(self.ring)
        self.pending = [0] * slots  # windows of each slot not yet reported done
        self.waited = 0.0
        self._finalizer = weakref.finalize(self, DecodePool._shutdown, self.procs, self.tasks, self.done)

    def submit(self, slot: int, windows, spans) -> None:
        """Queue the windows of one batch; each goes to the worker that owns its run."""
        self.pending[slot] += len(windows)
        for b, (w, span) in enumerate(zip(windows, spans)):
            q = self.tasks[hash((w.file, span[0])) % len(self.tasks)]
            q.put((slot, b, w.file, w.start, span))

    def wait(self, slot: int) -> None:
        """Block until every window submitted to `slot` is in the ring."""
        while self.pending[slot]:
            try:
                item = self.done.get(timeout=POLL_S)
            except queue.Empty:
                self.waited += POLL_S
                dead = [f"{p.name} (exit {p.exitcode})" for p in self.procs if not p.is_alive()]
                if dead or self.waited > TIMEOUT_S:
                    why = "died: " + ", ".join(dead) if dead else f"no reply in {TIMEOUT_S:.0f} s"
                    raise MediaError(f"nvvl decode workers {why}") from None
                continue
            self.waited = 0.0
            s, _, err = item
            if err:
                raise MediaError(err)
            self.pending[s] -= 1

    def planes(self, slot: int, windows, crop):
        """Cropped (y, u, v) of a filled slot: [B, N, h, w] and [B, N, h/2, w/2]."""
        frames = list(self.ring[slot, : len(windows)])
        return crop_planes(frames, windows, (self.h, self.w), crop, self.layout)

    def drain(self) -> None:
        for s in range(len(self.pending)):
            try:
                self.wait(s)
            except MediaError:
                self.pending[s] = 0

    @staticmethod
    def _shutdown(procs, tasks, done) -> None:
        """Workers release the ring and exit (waited for), stragglers are killed."""
        for p, q in zip(procs, tasks):
            if p.is_alive():
                q.put(None)
        deadline = time.monotonic() + 10.0
        left = sum(p.is_alive() for p in procs)
        while left and time.monotonic() < deadline:
            try:
                item = done.get(timeout=0.2)
            except queue.Empty:
                left = sum(p.is_alive() for p in procs)
                continue
            left -= item is None
        for p in procs:
            p.join(timeout=max(deadline - time.monotonic(), 0.1))
            if p.is_alive():
                p.kill()
                p.join()
        for q in (*tasks, done):
            q.cancel_join_thread()  # a killed worker's unread tasks must not block the exit
            q.close()

    def close(self) -> None:
        """Stop the workers, then free the ring (in that order)."""
        self._finalizer()
        self.ring = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.ipc_collect()
