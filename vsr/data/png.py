"""The `png` loader: a standard torch DataLoader over folders of PNG frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vsr.data.sampler import Window, WindowSampler
from vsr.media.io import MediaError


class PngSequenceDataset(Dataset):
    """Item = a Window from the sampler -> uint8 [N, 3, h, w], a fresh array every time (the
    example's dataset returned one reused buffer, so a batch held N copies of its last item)."""

    def __init__(self, dirs, sequence_length: int, crop_hw=None):
        self.n = sequence_length
        self.files = []
        for d in dirs:
            f = sorted(Path(d).glob("*.png"))
            if not f:
                raise MediaError(f"{d}: no PNG frames")
            if len(f) < self.n:
                raise MediaError(f"{d}: {len(f)} frames, shorter than a sequence of {self.n}")
            self.files.append(f)
        first = cv2.imread(str(self.files[0][0]), cv2.IMREAD_UNCHANGED)
        if first is None:
            raise MediaError(f"{self.files[0][0]}: not a readable PNG")
        self.frame_hw = first.shape[:2]
        self.crop_hw = crop_hw

    @property
    def lengths(self) -> list[int]:
        return [len(f) for f in self.files]

    def __len__(self) -> int:
        return sum(n - self.n + 1 for n in self.lengths)

    def __getitem__(self, win: Window) -> np.ndarray:
        h, w = self.crop_hw or self.frame_hw
        out = np.empty((self.n, h, w, 3), dtype=np.uint8)
        for t in range(self.n):
            path = self.files[win.file][win.start + t]
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise MediaError(f"{path}: not a readable PNG")
            out[t] = img[win.y0 : win.y0 + h, win.x0 : win.x0 + w, ::-1]
        return out.transpose(0, 3, 1, 2)


def _collate(items: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(items)))


class _BatchSampler:
    def __init__(self, sampler: WindowSampler, batch_size: int, drop_last: bool):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        return self.sampler.batches(self.batch_size, self.drop_last)

    def __len__(self) -> int:
        return self.sampler.num_batches(self.batch_size, self.drop_last)


class PngLoader:
    """DataLoader(num_workers, pin_memory) + non-blocking copy, [0, 1] and dtype on the device."""

    def __init__(
        self,
        dataset: PngSequenceDataset,
        batch_size: int,
        sampler: WindowSampler,
        device="cpu",
        dtype=torch.float32,
        workers: int = 2,
        drop_last: bool = True,
    ):
        dataset.crop_hw = sampler.crop
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        self.device, self.dtype = torch.device(device), dtype
        self.batches = _BatchSampler(sampler, batch_size, drop_last)
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.batches,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None,
            # spawn, not fork: a forked worker inherits the parent's decoder/OpenMP threads'
            # locks and can hang forever in cv2.imread (seen in CI)
            multiprocessing_context="spawn" if workers > 0 else None,
        )

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for x in self.loader:
            yield x.to(self.device, non_blocking=True).float().div_(255.0).to(self.dtype)

    def close(self) -> None:
        """Stop the persistent workers now, in order (left to interpreter exit, they can be
        killed mid-teardown: "DataLoader worker ... killed by signal: Aborted")."""
        it = getattr(self.loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.loader._iterator = None
