import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.synth import synthesize

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
synthesize(
    snakemake.output.video,  # noqa: F821
    snakemake.output.cuts,  # noqa: F821
    flow=snakemake.output.flow,  # noqa: F821
    **snakemake.params.synthetic,  # noqa: F821
)
