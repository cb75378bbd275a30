import difflib
import hashlib
import json
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the checkout's vsr, for the helpers below
from vsr.log import get as get_log
from vsr.media.io import MediaError, check_fits
from vsr.media.scenes import read_scenes

SCHEMA = Path(workflow.basedir) / "vsr/schema/config.schema.yaml"
CONFIG_LOG = "logs/config.log"


def stop(msg):
    """One console line for a bad setting, and the run ends before any job starts."""
    get_log("vsr.workflow").error(msg)
    raise SystemExit(1)


def key_name(path):
    """A config location as written in YAML: study[0].batch."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def config_problem(cfg, schema):
    """The first schema violation of `cfg` as one line (None when valid); a misspelt key
    names its nearest known neighbour."""
    import jsonschema

    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(cfg)
    )
    if err is None:
        return None
    where = key_name(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = list(err.schema.get("properties", {}))
        key = sorted(set(err.instance) - set(known))[0]
        near = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"config {where}: unknown setting '{key}'{hint}", err
    if err.validator in ("minimum", "maximum"):
        side = (
            "less than the minimum"
            if err.validator == "minimum"
            else "greater than the maximum"
        )
        return f"config {where}: {err.instance!r} is {side} {err.validator_value}", err
    return f"config {where}: {err.message}", err


def check_config():
    """Validate config (one line on the console, jsonschema's report in logs/config.log), fill
    in the schema's defaults, then check what the schema cannot: files and sizes."""
    schema = yaml.safe_load(SCHEMA.read_text())
    problem = config_problem(config, schema)
    if problem:
        Path(CONFIG_LOG).parent.mkdir(parents=True, exist_ok=True)
        Path(CONFIG_LOG).write_text(f"{problem[0]}\n\n{problem[1]}\n")
        stop(f"{problem[0]} (details: {CONFIG_LOG})")
    validate(config, str(SCHEMA))
    study = [s["res"] for s in config["study"]]
    for res in study:
        if res not in config["resolutions"]:
            stop(
                f"config study: res {res} is not in resolutions {config['resolutions']}"
            )
    if len(set(study)) != len(study):
        stop("config study: each res may appear once")
    src = config["source"]
    if src["kind"] == "file" and not Path(src["path"]).is_file():
        stop(f"config source.path: {src['path']}: file not found")
    if src["kind"] == "synthetic":
        try:
            syn = src["synthetic"]
            check_fits(syn["width"], syn["height"], config["resolutions"])
        except MediaError as e:
            stop(f"config source.synthetic: {e}")
    ckpt = config["flownet"]["checkpoint"]
    if ckpt and not Path(ckpt).is_file():
        stop(f"config flownet.checkpoint: {ckpt}: file not found")


check_config()

SRC = config["source"]
RESOLUTIONS = config["resolutions"]
STUDY = {s["res"]: s for s in config["study"]}
LOADERS = config["loaders"]
PRECISIONS = config["precisions"]


wildcard_constraints:
    res="|".join(RESOLUTIONS),
    split="train|val",
    scene=r"scene_\d{3}",
    loader="|".join(LOADERS),
    precision="|".join(PRECISIONS),


def scenes_csv(wildcards=None):
    """data/scenes.csv, once the split_scenes checkpoint has run (jobs wait for it)."""
    return checkpoints.split_scenes.get().output.csv


def scene_rows(wildcards=None):
    """Train and val rows of data/scenes.csv (not the dropped short scenes)."""
    return read_scenes(scenes_csv())


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


def scene_files(wildcards):
    """The files of one data/{res}/{kind} folder: scene mp4s or PNG folders."""
    return (
        scene_mp4s(wildcards) if wildcards.kind == "scenes" else scene_frames(wildcards)
    )


def data_fingerprint(path):
    """sha256 of data/scenes.csv: it names the source's own sha256 and every scene. (A params
    function reads it, not one of `input`: Snakemake's params rerun trigger skips those.)
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


PRETRAINED_FLOWNET = "runs/flownet/pretrained.pth.tar"


def flownet_cfg():
    """config flownet for training; frozen/finetune without a checkpoint: the pretrained one."""
    fl = {k: v for k, v in config["flownet"].items() if k != "pretrain"}
    if fl["mode"] in ("frozen", "finetune") and not fl["checkpoint"]:
        fl["checkpoint"] = PRETRAINED_FLOWNET
    return fl


def train_inputs(wildcards):
    """What the cell's loader reads: the list of its data folder (scene mp4s for nvvl, PNG
    folders for png; exactly scenes.csv's scenes) and the pretrained FlowNet if it uses it.
    """
    kind = "scenes" if wildcards.loader == "nvvl" else "frames"
    data = [f"data/{wildcards.res}/{kind}.txt"]
    if flownet_cfg()["checkpoint"] == PRETRAINED_FLOWNET:
        data.append(PRETRAINED_FLOWNET)
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
        data_fingerprint=data_fingerprint(scenes_csv()),
    )
    return shlex.quote(json.dumps(cfg, sort_keys=True))


def python():
    """The Python of the job: the conda env's under --sdm conda, else the one running Snakemake."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


# The checkout (jobs import `vsr` from it) and the job's Python reach the train rule's shell
# as variables of Snakemake's shell prefix (set wherever a job re-reads the workflow: SLURM
# nodes too), not as params: params are rerun triggers, and a finished project that is moved
# or copied (checkout, venv and all) must not retrain.
shell.prefix(
    f"set -euo pipefail; export VSR_ROOT={shlex.quote(workflow.basedir)}"
    f" VSR_PYTHON={shlex.quote(python())}; "
)


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


def all_cores():
    """The local cores Snakemake may use; on a cluster (no --cores) the profile sets threads."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def train_threads():
    """train.threads, else all local cores."""
    return config["train"]["threads"] or all_cores()


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
