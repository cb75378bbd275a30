import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.report import aggregate
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(s, aggregate, s.input.metrics, s.params.study, s.output)
