# vsr-pipeline: source video -> scenes -> per-resolution mp4 + PNG frames -> VSRNet training per
# loader x precision -> results/table.md. Run: snakemake --cores all results/table.md
from snakemake.utils import min_version

min_version("9.27")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/flow.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/table.md",
