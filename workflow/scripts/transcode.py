import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.transcode import transcode
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(
    s,
    transcode,
    s.input[0],
    s.output[0],
    s.wildcards.res,
    **s.params,
    log=lambda m: print(m, file=sys.stderr),
)
