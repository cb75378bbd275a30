import sys

from vsr.media.io import link_source

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
link_source(snakemake.input[0], snakemake.output[0])  # noqa: F821
