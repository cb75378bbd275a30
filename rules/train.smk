rule train:
    input:
        data=train_inputs,
        csv=scenes_csv,
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
        cfg=cell_cfg,
        srun=srun_prefix,
        launch=launcher,
        omp=omp_threads,
    shell:
        # VSR_ROOT, VSR_PYTHON: see common.smk; on failure the trainer's last log line (its
        # one-line error) is the rule's last word on the console
        'PYTHONPATH="$VSR_ROOT"${{PYTHONPATH:+:$PYTHONPATH}} OMP_NUM_THREADS={params.omp}'
        ' {params.srun} "$VSR_PYTHON" {params.launch} -m vsr.train --cfg {params.cfg}'
        " --data data/{wildcards.res} --out runs/{wildcards.res}/{wildcards.loader}_{wildcards.precision}"
        " > {log:q} 2>&1 || {{ rc=$?; tail -n 1 {log:q} >&2; exit $rc; }}"


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
