# FlowNet-SD without downloaded weights: supervised pretraining on rendered pairs with known
# flow (vsr/flowtrain.py). Its checkpoint is the train rule's flownet.checkpoint whenever
# flownet.mode is frozen/finetune and flownet.checkpoint is null (rules/common.smk).


rule pretrain_flownet:
    input:
        scenes="data/scenes",
        csv="data/scenes.csv",
    output:
        checkpoint=PRETRAINED_FLOWNET,
        metrics="runs/flownet/pretrain_metrics.json",
    log:
        "logs/pretrain_flownet.log",
    benchmark:
        "benchmarks/pretrain_flownet.tsv"
    conda:
        "../envs/vsr.yaml"
    threads: train_threads()
    resources:
        gpu=min(1, config["train"]["gpus"]),
    params:
        width=config["flownet"]["width"],
        pretrain=config["flownet"]["pretrain"],
        gpu=config["train"]["gpus"] > 0,
    script:
        "../workflow/scripts/pretrain_flownet.py"
