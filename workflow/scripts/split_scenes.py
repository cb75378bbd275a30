import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.scenes import split_scenes

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
split_scenes(
    snakemake.input[0],  # noqa: F821
    snakemake.output.scenes,  # noqa: F821
    snakemake.output.csv,  # noqa: F821
    **snakemake.params,  # noqa: F821
    log=lambda m: print(m, file=sys.stderr),
)
