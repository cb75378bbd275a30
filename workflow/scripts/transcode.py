import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.transcode import transcode

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
transcode(snakemake.input[0], snakemake.output[0], snakemake.wildcards.res, **snakemake.params)  # noqa: F821
