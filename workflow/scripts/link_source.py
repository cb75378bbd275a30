import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import link_source

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
link_source(snakemake.input[0], snakemake.output[0])  # noqa: F821
