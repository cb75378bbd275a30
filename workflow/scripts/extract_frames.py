import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.transcode import extract_frames
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(s, extract_frames, s.input[0], s.output[0])
