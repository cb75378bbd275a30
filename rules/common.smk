import csv
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

validate(config, "../vsr/schema/config.schema.yaml")
config["train"].setdefault("nodes", 1)
config["train"].setdefault("threads", None)


RESOLUTIONS = config["resolutions"]
STUDY = {s["res"]: s for s in config["study"]}
LOADERS = config["loaders"]
PRECISIONS = config["precisions"]

for _res in STUDY:
    if _res not in RESOLUTIONS:
        raise ValueError(
            f"config study: res {_res} is not in config resolutions {RESOLUTIONS}"
        )
if len(STUDY) != len(config["study"]):
    raise ValueError("config study: each res may appear once")


wildcard_constraints:
    res="|".join(RESOLUTIONS),
    split="train|val",
    scene=r"scene_\d{3}",
    loader="|".join(LOADERS),
    precision="|".join(PRECISIONS),


def scene_rows(wildcards=None):
    """Train and val rows of data/scenes.csv (not the dropped short scenes); known only once
    the split_scenes checkpoint has run."""
    with open(checkpoints.split_scenes.get().output.csv, newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] in ("train", "val")]


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


PRETRAINED_FLOWNET = "runs/flownet/pretrained.pth.tar"


def flownet_cfg():
    """config flownet for training; frozen/finetune without a checkpoint: the pretrained one."""
    fl = {k: v for k, v in config["flownet"].items() if k != "pretrain"}
    if fl["mode"] in ("frozen", "finetune") and not fl.get("checkpoint"):
        fl["checkpoint"] = PRETRAINED_FLOWNET
    return fl


def train_inputs(wildcards):
    """The files the cell's loader reads: scene mp4s (nvvl) or PNG folders (png)."""
    data = (
        scene_mp4s(wildcards) if wildcards.loader == "nvvl" else scene_frames(wildcards)
    )
    if flownet_cfg().get("checkpoint") == PRETRAINED_FLOWNET:
        data = [*data, PRETRAINED_FLOWNET]
    return data


def cell_cfg(wildcards):
    """The training settings of one cell, as a shell-quoted JSON object."""
    cfg = dict(config["train"])
    cfg.update(STUDY[wildcards.res])
    cfg.update(
        loader=wildcards.loader,
        precision=wildcards.precision,
        model=config["model"],
        flownet=flownet_cfg(),
        nvvl=config["nvvl"],
    )
    return shlex.quote(json.dumps(cfg, sort_keys=True))


def python():
    """The Python of the job: the conda env's under --sdm conda, else the one running Snakemake."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


# The checkout (jobs import `vsr` from it) and the job's Python reach the train rule's shell
# as environment variables (set again wherever a job re-reads the workflow: SLURM nodes too),
# not as params: params are rerun triggers, and a finished project that is moved or copied
# (checkout, venv and all) must not retrain.
os.environ.update(VSR_ROOT=workflow.basedir, VSR_PYTHON=python())


def nproc_per_node(resources):
    t = config["train"]
    if t["gpus"] > 0:  # --resources gpu=N may lower a job's gpu resource: follow it
        return resources.get("gpu", t["gpus"]) if t["nodes"] == 1 else t["gpus"]
    return t["cpu_processes"]


def train_resources():
    """gpu=N on one node; several nodes: one srun task per node (torchrun each), GPUs per node."""
    t = config["train"]
    if t["nodes"] == 1:
        return {"gpu": t["gpus"]}
    res = {"nodes": t["nodes"], "tasks": t["nodes"], "tasks_per_gpu": 0, "mpi": "srun"}
    if t["gpus"] > 0:
        res["gres"] = f"gpu:{t['gpus']}"
    return res


def train_threads():
    """train.threads, else all local cores; on a cluster (no --cores) the profile sets them."""
    if config["train"]["threads"]:
        return config["train"]["threads"]
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def launcher(wildcards, resources):
    """Arguments after the Python: none for one process, else vsr.train.launch (torchrun)."""
    nproc = nproc_per_node(resources)
    if config["train"]["nodes"] == 1 and nproc <= 1:
        return ""
    return f"-m vsr.train.launch --nproc-per-node {nproc}"


def srun_prefix(wildcards):
    """Several nodes: one srun task per node, each starting its torchrun (c10d)."""
    return "srun --ntasks-per-node=1" if config["train"]["nodes"] > 1 else ""


def omp_threads(wildcards, threads, resources):
    return max(1, threads // max(1, nproc_per_node(resources)))
