import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import link_source
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(s, link_source, s.input[0], s.output[0])
