import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

import torch

from vsr.flowtrain import pretrain, val_clips

log = open(snakemake.log[0], "w")  # noqa: F821
sys.stderr = log
torch.set_num_threads(snakemake.threads)  # noqa: F821
pretrain(
    snakemake.params.width,  # noqa: F821
    snakemake.params.pretrain,  # noqa: F821
    snakemake.output.checkpoint,  # noqa: F821
    snakemake.output.metrics,  # noqa: F821
    val_clips(snakemake.input.csv, snakemake.input.scenes),  # noqa: F821
    device="cuda" if snakemake.params.gpu else "cpu",  # noqa: F821
    log=lambda m: print(m, file=log, flush=True),
)
