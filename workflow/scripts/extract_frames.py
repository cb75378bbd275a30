import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.transcode import extract_frames

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
extract_frames(snakemake.input[0], snakemake.output[0])  # noqa: F821
