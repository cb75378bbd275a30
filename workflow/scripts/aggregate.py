import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.report import aggregate

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
aggregate(
    snakemake.input.metrics,  # noqa: F821
    snakemake.params.study,  # noqa: F821
    snakemake.params.png_workers,  # noqa: F821
    snakemake.output,  # noqa: F821
)
