import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.synth import synthesize

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
synthesize(snakemake.output.video, snakemake.output.cuts, **snakemake.params.synthetic)  # noqa: F821
