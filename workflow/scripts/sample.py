import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # noqa: F821  the checkout

from vsr.infer.sample import sample_image

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
s = sample_image(snakemake.input.checkpoint, snakemake.input.video, snakemake.output[0])  # noqa: F821
print(f"{snakemake.input.video} frame {s['frame']}: {s['psnr']}", file=sys.stderr)  # noqa: F821
