import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import script_main
from vsr.report import aggregate

s = snakemake  # noqa: F821
script_main(s, aggregate, s.input.metrics, s.params.study, s.params.png_workers, s.output)
