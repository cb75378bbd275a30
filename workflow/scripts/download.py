import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.download import download

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
download(snakemake.params.url, snakemake.output[0], snakemake.params.sha256)  # noqa: F821
