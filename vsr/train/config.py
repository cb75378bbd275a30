"""The trainer's settings: one schema (vsr/schema/config.schema.yaml) gives their defaults and
checks, for the workflow, `python -m vsr.train` and `pretrain_flownet` alike.

`merged(cfg)` -> the full settings dict (what checkpoints store); `TrainConfig.of(cfg)` -> the
same settings as typed sections. A misspelt key is an error naming the key, never ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from vsr.errors import ConfigError

SCHEMA = Path(__file__).parents[1] / "schema" / "config.schema.yaml"
SECTIONS = ("model", "flownet", "nvvl")

# Settings a finished run may change and still be continued (not what it learns from).
EXTENSIBLE = {
    "iterations",
    "val_every",
    "checkpoint_every",
    "log_images_every",
    "warmup_iters",
    "log_every",
    "data_time_every",
    "png_workers",
    "compile",
    "nvvl",
    "val_stride",
}
# Workflow-only keys a cell's settings carry along (they steer Snakemake, not the trainer).
WORKFLOW_ONLY = {"cpu_processes", "nodes", "threads"}


@dataclass(frozen=True)
class ModelConfig:
    features: list
    head: str
    batch_norm: bool


@dataclass(frozen=True)
class FlowNetConfig:
    checkpoint: str | None
    mode: str
    width: float
    flow_from: str


@dataclass(frozen=True)
class NvvlConfig:
    backend: str
    decoders_per_gpu: int
    prefetch: int
    cpu_threads: int
    processes: int


@dataclass(frozen=True)
class PretrainConfig:
    iterations: int
    batch: int
    size: int
    lr: float
    min_speed: float
    max_speed: float
    eval_pairs: int
    workers: int
    seed: int


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's settings as typed sections (defaults: the schema's, via `merged`)."""

    loader: str
    precision: str
    res: str
    crop: list | None
    batch: int
    frames: int
    iterations: int
    val_every: int
    checkpoint_every: int
    val_stride: int
    val_crop: int
    lr_min: float
    lr_max: float
    lr_warmup: int
    weight_decay: float
    flow_lr_scale: float
    flow_freeze_iters: int | None
    log_every: int
    data_time_every: int
    compile: str | bool
    channels_last: bool
    gpus: int
    png_workers: int
    sync_bn: bool
    warmup_iters: int
    log_images_every: int
    seed: int
    data_fingerprint: str
    model: ModelConfig
    flownet: FlowNetConfig
    nvvl: NvvlConfig

    @classmethod
    def of(cls, cfg: dict) -> TrainConfig:
        """The typed view of a merged settings dict (workflow-only keys left out)."""
        kinds = {"model": ModelConfig, "flownet": FlowNetConfig, "nvvl": NvvlConfig}
        names = {f.name for f in dataclasses.fields(cls)}
        vals = {k: (_typed(kinds[k], v) if k in kinds else v) for k, v in cfg.items() if k in names}
        return cls(**vals)


def _typed(kind, section: dict):
    """A section's typed view: its dataclass's fields (sub-sections such as flownet.pretrain
    have views of their own)."""
    return kind(**{f.name: section[f.name] for f in dataclasses.fields(kind)})


def schema_defaults(props: dict) -> dict:
    """The `default:` of each property (objects: their own defaults, if they have any)."""
    out = {}
    for k, v in props.items():
        if "default" in v:
            out[k] = copy.deepcopy(v["default"])
    return out


@cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


@cache
def trainer_schema() -> dict:
    """The trainer's view of the workflow schema: train keys + one study cell + sections."""
    full = _schema()
    props, own = full["properties"], full["definitions"]["trainer"]
    cell = props["study"]["items"]["properties"]
    merged_props = {
        "loader": {**props["loaders"]["items"], **own["loader"]},
        "precision": {**props["precisions"]["items"], **own["precision"]},
        **props["train"]["properties"],
        **cell,
        "res": {**cell["res"], **own["res"]},
        "batch": {**cell["batch"], **own["batch"]},
    }
    for k in SECTIONS:
        merged_props[k] = props[k]
    return {
        "type": "object",
        "additionalProperties": False,
        "definitions": full.get("definitions", {}),
        "properties": merged_props,
    }


@cache
def _defaults() -> dict:
    props = trainer_schema()["properties"]
    out = {k: v for k, v in schema_defaults(props).items() if k not in WORKFLOW_ONLY}
    for k in SECTIONS:
        out[k] = schema_defaults(props[k]["properties"])
    return out


def defaults() -> dict:
    """The trainer's defaults (a fresh copy)."""
    return copy.deepcopy(_defaults())


def _unknown(cfg: dict, props: dict, where: str = "") -> None:
    """A misspelt key names itself and its nearest known neighbour."""
    for k, v in cfg.items():
        if k not in props and k not in WORKFLOW_ONLY:
            near = difflib.get_close_matches(k, list(props), n=1)
            hint = f" (did you mean '{where}{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown setting '{where}{k}'{hint}")
        sub = props.get(k, {}).get("properties") if isinstance(props.get(k), dict) else None
        if isinstance(v, dict) and sub:
            _unknown(v, sub, f"{where}{k}.")


def _check(cfg: dict, schema: dict, where: str = "") -> None:
    import jsonschema

    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if err is not None:
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"setting {where}{key}: {err.message}")


def merged(cfg: dict) -> dict:
    """The schema's defaults overlaid with `cfg` (one level deep for sections), validated."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"--cfg must be a JSON object, got {type(cfg).__name__}")
    schema = trainer_schema()
    _unknown(cfg, schema["properties"])
    out = defaults()
    for k, v in cfg.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    validate(out)
    return out


def validate(cfg: dict) -> None:
    _check(cfg, trainer_schema())
    if cfg["lr_min"] > cfg["lr_max"]:
        raise ConfigError(f"lr_min {cfg['lr_min']} is above lr_max {cfg['lr_max']}")


def pretrain_config(cfg: dict) -> PretrainConfig:
    """flownet.pretrain's settings: the schema's defaults overlaid with `cfg`, validated."""
    schema = _schema()["properties"]["flownet"]["properties"]["pretrain"]
    if not isinstance(cfg, dict):
        raise ConfigError(f"setting flownet.pretrain must be a mapping, got {type(cfg).__name__}")
    _unknown(cfg, schema["properties"], "flownet.pretrain.")
    out = {**schema_defaults(schema["properties"]), **cfg}
    _check(out, schema, "flownet.pretrain.")
    if not out["min_speed"] < out["max_speed"]:
        raise ConfigError(
            f"flownet.pretrain: need 0 < min_speed < max_speed, got {out['min_speed']} and {out['max_speed']}"
        )
    return PretrainConfig(**out)


def changed_settings(old: dict, new: dict) -> list[str]:
    """Keys (outside EXTENSIBLE) whose values differ: a run cannot continue across them. A
    setting the checkpoint predates counts as its default."""
    keys = (set(old) | set(new)) - EXTENSIBLE
    return sorted(k for k in keys if _setting(old, k) != _setting(new, k))


def _setting(cfg: dict, key: str) -> str:
    return json.dumps(cfg.get(key, _defaults().get(key)), sort_keys=True)
