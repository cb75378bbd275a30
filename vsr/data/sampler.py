"""Which frames make a sample, in which order, on which rank, with which crop.

A sample is a window of N consecutive frames of one scene. The sampler is the single source of
that decision for both loaders, so `nvvl` and `png` see identical samples and crops.

Training order: the windows of a file are cut into runs of `run` consecutive starts (a run of 4
windows of 3 frames spans 6 frames: with keyframes every 4 frames that is one group of
pictures plus 2 frames), runs are shuffled, and the windows of every `block` consecutive runs
are shuffled among themselves. Every window still comes exactly once per epoch, a batch mixes
windows of up to `block` random places, and a video loader decodes each run once for its
`run` windows instead of once per window (3x fewer decoded frames at GOP 4, 3 frames).
`run=1` is a plain shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    file: int  # index into the dataset's file list
    start: int  # first frame
    y0: int  # crop origin (even, so 4:2:0 chroma crops exactly)
    x0: int


def floor64(n: int) -> int:
    return n // 64 * 64


def crop_size(frame_hw: tuple[int, int], crop: tuple[int, int] | None) -> tuple[int, int]:
    """The crop actually used: the requested one (or the whole frame), floored to a multiple of
    64 because FlowNet-SD halves the image six times (540p -> 512x960)."""
    h, w = crop if crop else frame_hw
    h, w = min(h, frame_hw[0]), min(w, frame_hw[1])
    if floor64(h) < 64 or floor64(w) < 64:
        raise ValueError(f"crop {h}x{w} of frames {frame_hw[0]}x{frame_hw[1]} is below 64x64")
    return floor64(h), floor64(w)


class WindowSampler:
    """Seeded shuffle of every window of every file, sharded over ranks like DistributedSampler.

    `train=True`: shuffled per epoch (`set_epoch`), padded so every rank gets the same count,
    random crops drawn per (seed, epoch, window). `train=False`: fixed order, no padding (each
    window exactly once over all ranks), centre crops.
    """

    def __init__(
        self,
        lengths,
        frames: int,
        frame_hw,
        crop=None,
        train=True,
        seed=0,
        rank=0,
        world=1,
        stride=1,
        run: int = 4,
        block: int = 32,
    ):
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd and positive, got {frames}")
        if run < 1 or block < 1:
            raise ValueError(f"run and block must be >= 1, got {run}, {block}")
        self.frames, self.frame_hw, self.train = frames, tuple(frame_hw), train
        self.crop = crop_size(self.frame_hw, crop)
        self.seed, self.rank, self.world = seed, rank, world
        self.windows = np.array(
            [(f, s) for f, n in enumerate(lengths) for s in range(0, n - frames + 1, stride)],
            dtype=np.int64,
        ).reshape(-1, 2)
        if len(self.windows) == 0:
            raise ValueError(f"no window of {frames} frames in files of lengths {list(lengths)}")
        self.lengths, self.stride, self.run, self.block = list(lengths), stride, run, block
        # run id of every window: `run` consecutive windows of one file
        pos = np.concatenate([np.arange(len(range(0, n - frames + 1, stride))) for n in lengths])
        key = self.windows[:, 0] * (int(pos.max()) + 1) + pos // run
        self.run_ids = np.unique(key, return_inverse=True)[1]
        self.epoch = 0
        self.skip = 0  # samples of this rank's epoch already consumed (for resume)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _order(self) -> np.ndarray:
        n = len(self.windows)
        if not self.train:
            return np.arange(n)[self.rank :: self.world]
        rng = np.random.default_rng([self.seed, self.epoch])
        runs = rng.permutation(int(self.run_ids.max()) + 1)
        rank_of_run = np.empty_like(runs)
        rank_of_run[runs] = np.arange(len(runs))
        order = np.argsort(rank_of_run[self.run_ids], kind="stable")  # runs shuffled, kept whole
        chunk = self.run * self.block
        for i in range(0, n, chunk):  # windows shuffled within each block of runs
            order[i : i + chunk] = rng.permutation(order[i : i + chunk])
        per_rank = -(-n // self.world)
        order = np.resize(order, per_rank * self.world)  # pad by repeating, like DDP's sampler
        return order[self.rank :: self.world]

    def __len__(self) -> int:
        n = len(self.windows)
        return -(-n // self.world) if self.train else len(range(self.rank, n, self.world))

    def window(self, i: int) -> Window:
        f, s = (int(v) for v in self.windows[i])
        (H, W), (h, w) = self.frame_hw, self.crop
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i, 7919])
            y0 = int(rng.integers(0, (H - h) // 2 + 1)) * 2
            x0 = int(rng.integers(0, (W - w) // 2 + 1)) * 2
        else:
            y0, x0 = (H - h) // 4 * 2, (W - w) // 4 * 2
        return Window(f, s, y0, x0)

    def run_span(self, win: Window) -> tuple[int, int]:
        """First and last start of the run holding `win` (its frames: first..last+frames-1)."""
        per = self.run * self.stride
        first = win.start // per * per
        last = min(first + per - self.stride, self.lengths[win.file] - self.frames)
        return first, last

    def __iter__(self):
        for i in self._order()[self.skip :]:
            yield self.window(int(i))

    def batches(self, batch_size: int, drop_last: bool = True):
        """Group this rank's windows into lists of `batch_size`."""
        batch = []
        for w in self:
            batch.append(w)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch and not drop_last:
            yield batch

    def num_batches(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self) - self.skip
        return n // batch_size if drop_last else -(-n // batch_size)
