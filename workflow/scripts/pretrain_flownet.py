import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

import torch

from vsr.runner import script_main
from vsr.train.pretrain_flow import pretrain, val_clips

s = snakemake  # noqa: F821
torch.set_num_threads(s.threads)


def run():
    clips = val_clips(s.input.csv, s.input.scenes)
    device = "cuda" if s.params.gpu else "cpu"
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731  the rule's log
    pretrain(
        s.params.width,
        s.params.pretrain,
        s.output.checkpoint,
        s.output.metrics,
        clips,
        device=device,
        log=log,
    )


script_main(s, run)
