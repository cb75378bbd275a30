import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.media.scenes import prune, read_scenes
from vsr.runner import script_main

s = snakemake  # noqa: F821
folder = f"data/{s.wildcards.res}/{s.wildcards.kind}"
script_main(s, lambda: prune(folder, read_scenes(s.input.csv), s.wildcards.kind, s.output[0]))
