import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import script_main
from vsr.media.scenes import split_scenes

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
