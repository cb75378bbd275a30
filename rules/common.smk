import csv
import json
import shlex
import sys

from snakemake.utils import validate


validate(config, "../vsr/schema/config.schema.yaml")

RESOLUTIONS = config["resolutions"]
STUDY = {s["res"]: s for s in config["study"]}
LOADERS = config["loaders"]
PRECISIONS = config["precisions"]

for _res in STUDY:
    if _res not in RESOLUTIONS:
        raise ValueError(f"config study: res {_res} is not in config resolutions {RESOLUTIONS}")
if len(STUDY) != len(config["study"]):
    raise ValueError("config study: each res may appear once")


wildcard_constraints:
    res="|".join(RESOLUTIONS),
    split="train|val",
    scene=r"scene_\d{3}",
    loader="|".join(LOADERS),
    precision="|".join(PRECISIONS),


def scene_rows(wildcards=None):
    """Rows of data/scenes.csv; known only once the split_scenes checkpoint has run."""
    with open(checkpoints.split_scenes.get().output.csv, newline="") as f:
        return list(csv.DictReader(f))


def scene_mp4s(wildcards):
    return [
        f"data/{wildcards.res}/scenes/{r['split']}/{r['scene']}.mp4"
        for r in scene_rows(wildcards)
    ]


def scene_frames(wildcards):
    return [
        f"data/{wildcards.res}/frames/{r['split']}/{r['scene']}"
        for r in scene_rows(wildcards)
    ]


def train_inputs(wildcards):
    """The files the cell's loader reads: scene mp4s (nvvl) or PNG folders (png)."""
    return scene_mp4s(wildcards) if wildcards.loader == "nvvl" else scene_frames(wildcards)


def cell_cfg(wildcards):
    """The training settings of one cell, as a shell-quoted JSON object."""
    cfg = dict(config["train"])
    cfg.update(STUDY[wildcards.res])
    cfg.update(
        loader=wildcards.loader,
        precision=wildcards.precision,
        model=config["model"],
        flownet=config["flownet"],
        nvvl=config["nvvl"],
    )
    return shlex.quote(json.dumps(cfg, sort_keys=True))


def launcher(wildcards, resources):
    """python for one process; torchrun (c10d, standalone or multi-node) otherwise."""
    t = config["train"]
    nproc = resources.gpu if t["gpus"] > 0 else t["cpu_processes"]
    if nproc <= 1 and t.get("nodes", 1) <= 1:
        return shlex.quote(sys.executable)
    return f"{shlex.quote(sys.executable)} -m vsr.launch --nproc-per-node {nproc}"


def omp_threads(wildcards, threads, resources):
    t = config["train"]
    nproc = resources.gpu if t["gpus"] > 0 else t["cpu_processes"]
    return max(1, threads // max(1, nproc))
