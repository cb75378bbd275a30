import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import script_main
from vsr.media.transcode import extract_frames

s = snakemake  # noqa: F821
script_main(s, extract_frames, s.input[0], s.output[0])
