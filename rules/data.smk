SRC = config["source"]

if SRC["kind"] == "synthetic":

    rule synthesize:
        output:
            video="data/source.mp4",
            cuts="data/source_cuts.json",
            flow="data/source_flow.npz",
        log:
            "logs/synthesize.log",
        benchmark:
            "benchmarks/synthesize.tsv"
        conda:
            "../envs/vsr.yaml"
        params:
            synthetic=SRC.get("synthetic", {}),
        script:
            "../workflow/scripts/synthesize.py"

elif SRC["kind"] == "url":

    localrules:
        download,

    rule download:
        output:
            "data/source.mp4",
        log:
            "logs/download.log",
        retries: 2
        conda:
            "../envs/vsr.yaml"
        params:
            url=SRC["url"],
            sha256=SRC.get("sha256"),
        script:
            "../workflow/scripts/download.py"

else:

    rule link_source:
        input:
            SRC["path"],
        output:
            "data/source.mp4",
        log:
            "logs/link_source.log",
        conda:
            "../envs/vsr.yaml"
        script:
            "../workflow/scripts/link_source.py"


checkpoint split_scenes:
    input:
        "data/source.mp4",
    output:
        scenes=directory("data/scenes"),
        csv="data/scenes.csv",
    log:
        "logs/split_scenes.log",
    benchmark:
        "benchmarks/split_scenes.tsv"
    conda:
        "../envs/vsr.yaml"
    params:
        threshold=config["scenes"]["threshold"],
        min_scene_len=config["scenes"]["min_scene_len"],
        val_every=config["scenes"]["val_every"],
        # a scene must hold one training window, else it is dropped (split=dropped in the csv)
        min_frames=max(
            config["scenes"]["min_scene_len"], config["train"].get("frames", 3)
        ),
    script:
        "../workflow/scripts/split_scenes.py"


rule transcode:
    input:
        "data/scenes/{scene}.mp4",
    output:
        "data/{res}/scenes/{split}/{scene}.mp4",
    log:
        "logs/transcode/{res}/{split}/{scene}.log",
    benchmark:
        "benchmarks/transcode/{res}/{split}/{scene}.tsv"
    conda:
        "../envs/vsr.yaml"
    params:
        **config["transcode"],
    script:
        "../workflow/scripts/transcode.py"


rule extract_frames:
    input:
        "data/{res}/scenes/{split}/{scene}.mp4",
    output:
        directory("data/{res}/frames/{split}/{scene}"),
    log:
        "logs/extract_frames/{res}/{split}/{scene}.log",
    benchmark:
        "benchmarks/extract_frames/{res}/{split}/{scene}.tsv"
    conda:
        "../envs/vsr.yaml"
    script:
        "../workflow/scripts/extract_frames.py"


rule data_res:
    input:
        mp4=scene_mp4s,
        frames=scene_frames,
    output:
        touch("data/{res}/.complete"),
    localrule: True


rule data:
    input:
        expand("data/{res}/.complete", res=RESOLUTIONS),
    localrule: True
