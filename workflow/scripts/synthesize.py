import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.io import script_main
from vsr.media.synth import synthesize

s = snakemake  # noqa: F821
script_main(s, synthesize, s.output.video, s.output.cuts, flow=s.output.flow, **s.params.synthetic)
