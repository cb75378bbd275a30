import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.download import download
from vsr.runner import script_main

s = snakemake  # noqa: F821
p = s.params
script_main(s, download, p.url, s.output[0], p.sha256, timeout=p.timeout, deadline=p.deadline)
