import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.scenes import split_scenes
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(
    s,
    split_scenes,
    s.input[0],
    s.output.scenes,
    s.output.csv,
    **s.params,
    log=lambda m: print(m, file=sys.stderr),
)
