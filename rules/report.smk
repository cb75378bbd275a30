rule sample:
    input:
        checkpoint=f"runs/{{res}}/{LOADERS[0]}_{PRECISIONS[0]}/final.pt",
        # the first val scene (known once split_scenes has run)
        video=lambda wc: "data/{}/scenes/val/{}.mp4".format(
            wc.res, next(r["scene"] for r in scene_rows(wc) if r["split"] == "val")
        ),
    output:
        report(
            "results/{res}/sample.png",
            category="Samples",
            caption="../report/sample.rst",
            labels={"resolution": "{res}"},
        ),
    log:
        "logs/sample/{res}.log",
    benchmark:
        "benchmarks/sample/{res}.tsv"
    localrule: True
    conda:
        "../envs/vsr.yaml"
    script:
        "../workflow/scripts/sample.py"


rule aggregate:
    input:
        metrics=expand(
            "runs/{res}/{loader}_{precision}/metrics.jsonl",
            res=list(STUDY),
            loader=LOADERS,
            precision=PRECISIONS,
        ),
        sysmon=expand(
            "runs/{res}/{loader}_{precision}/sysmon.json",
            res=list(STUDY),
            loader=LOADERS,
            precision=PRECISIONS,
        ),
        data=expand("data/{res}/.complete", res=list(STUDY)),
        samples=expand("results/{res}/sample.png", res=list(STUDY)),
    output:
        table=report(
            "results/table.md", category="Benchmark", caption="../report/table.rst"
        ),
        html="results/table.html",
        csv="results/benchmark.csv",
        psnr=report("results/psnr.png", category="Plots", caption="../report/psnr.rst"),
        loss=report(
            "results/train_loss.png", category="Plots", caption="../report/loss.rst"
        ),
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    localrule: True
    conda:
        "../envs/vsr.yaml"
    params:
        study=config["study"],
    script:
        "../workflow/scripts/aggregate.py"
