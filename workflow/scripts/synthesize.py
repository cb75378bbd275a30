import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.synth import synthesize
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(
    s, synthesize, s.output.video, s.output.cuts, flow=s.output.flow, workers=s.threads, **s.params.synthetic
)
