rule train:
    input:
        train_inputs,
    output:
        metrics="runs/{res}/{loader}_{precision}/metrics.jsonl",
        final="runs/{res}/{loader}_{precision}/final.pt",
        sysmon="runs/{res}/{loader}_{precision}/sysmon.json",
    log:
        "logs/train/{res}/{loader}_{precision}.log",
    benchmark:
        "benchmarks/train/{res}/{loader}_{precision}.tsv"
    conda:
        "../envs/vsr.yaml"
    threads: train_threads()
    resources:
        **train_resources(),
    params:
        root=ROOT,
        cfg=cell_cfg,
        launch=launcher,
        omp=omp_threads,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} OMP_NUM_THREADS={params.omp}"
        " {params.launch} -m vsr.train --cfg {params.cfg}"
        " --data data/{wildcards.res} --out runs/{wildcards.res}/{wildcards.loader}_{wildcards.precision}"
        " > {log} 2>&1"


# One named target per cell of the study: `snakemake --cores all train_nvvl_fp16`.
for _loader in LOADERS:
    for _prec in PRECISIONS:

        rule:
            name:
                f"train_{_loader}_{_prec}"
            input:
                expand(
                    "runs/{res}/{loader}_{precision}/metrics.jsonl",
                    res=list(STUDY),
                    loader=_loader,
                    precision=_prec,
                ),
            localrule: True
