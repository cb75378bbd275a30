import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.infer.sample import sample_image
from vsr.runner import script_main

s = snakemake  # noqa: F821


def run():
    r = sample_image(s.input.checkpoint, s.input.video, s.output[0])
    print(f"{s.input.video} frame {r['frame']}: {r['psnr']}", file=sys.stderr)


script_main(s, run)
