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
        threads: all_cores()
        params:
            synthetic=SRC["synthetic"],
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
        benchmark:
            "benchmarks/download.tsv"
        conda:
            "../envs/vsr.yaml"
        params:
            url=SRC["url"],
            sha256=SRC["sha256"],
            timeout=SRC["timeout"],
            deadline=SRC["deadline"],
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
        benchmark:
            "benchmarks/link_source.tsv"
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
        min_frames=max(config["scenes"]["min_scene_len"], config["train"]["frames"]),
        resolutions=RESOLUTIONS,
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


# data/{res}/scenes and data/{res}/frames hold exactly scenes.csv's scenes (files of an earlier
# source and temporaries of a killed job removed); the list is what the trainer depends on.
rule scene_list:
    input:
        csv="data/scenes.csv",
        files=scene_files,
    output:
        "data/{res}/{kind}.txt",
    log:
        "logs/scene_list/{res}/{kind}.log",
    benchmark:
        "benchmarks/scene_list/{res}/{kind}.tsv"
    wildcard_constraints:
        kind="scenes|frames",
    localrule: True
    conda:
        "../envs/vsr.yaml"
    script:
        "../workflow/scripts/scene_list.py"


rule data_res:
    input:
        "data/{res}/scenes.txt",
        "data/{res}/frames.txt",
    output:
        touch("data/{res}/.complete"),
    localrule: True


rule data:
    input:
        expand("data/{res}/.complete", res=RESOLUTIONS),
    localrule: True
