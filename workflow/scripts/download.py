import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.download import download
from vsr.runner import script_main

s = snakemake  # noqa: F821
script_main(s, download, s.params.url, s.output[0], s.params.sha256)
