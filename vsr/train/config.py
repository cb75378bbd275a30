"""The trainer's settings: defaults, merging, and validation against the workflow's schema.

`python -m vsr.train --cfg JSON` gets the same checks as `snakemake` (vsr/schema/config.schema.yaml):
the train section's keys, the study cell's (res, crop, batch), and the model / flownet / nvvl
sections. A misspelt key is an error naming the key, never silently ignored.
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import cache
from pathlib import Path

import yaml

from vsr.errors import ConfigError

SCHEMA = Path(__file__).parents[1] / "schema" / "config.schema.yaml"

DEFAULTS = {
    "loader": "nvvl",
    "precision": "fp32",
    "res": "540p",
    "crop": None,
    "batch": 7,
    "frames": 3,
    "iterations": 100,
    "val_every": 50,
    "checkpoint_every": 50,
    "lr_max": 1e-3,  # peak of the schedule (reached after lr_warmup iterations)
    "lr_min": 1e-5,  # where the cosine ends, at the last iteration
    "lr_warmup": 20,
    "weight_decay": 1e-4,  # decoupled (AdamW), SR conv weights only: never FlowNet
    "flow_lr_scale": 0.125,  # FlowNet's lr relative to the SR net's (BasicVSR)
    "flow_freeze_iters": None,  # FlowNet held still for these first iterations; None = 5%
    "seed": 0,
    "png_workers": 2,
    "val_stride": 1,
    "val_crop": 4,
    "sync_bn": False,
    "log_images_every": 50,
    "log_every": 20,  # losses are read back from the device every this many iterations
    "data_time_every": 10,  # a synchronised data-time sample every this many iterations
    "compile": "auto",  # torch.compile the model: auto = on CUDA
    "channels_last": True,
    "warmup_iters": 2,
    "gpus": 0,
    "model": {"features": [64, 32], "head": "residual", "batch_norm": False},
    "flownet": {"mode": "finetune", "checkpoint": None, "width": 1.0, "flow_from": "lr"},
    "nvvl": {"backend": "auto", "decoders_per_gpu": 7, "prefetch": 2, "cpu_threads": 4, "processes": 0},
}

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


@cache
def trainer_schema() -> dict:
    """The trainer's view of the workflow schema: train keys + one study cell + sections."""
    full = yaml.safe_load(SCHEMA.read_text())
    props = full["properties"]
    own = {
        "loader": {"type": "string", "enum": props["loaders"]["items"]["enum"]},
        "precision": {"type": "string", "enum": props["precisions"]["items"]["enum"]},
        "compile": {"enum": ["auto", True, False]},
        "channels_last": {"type": "boolean"},
        "log_every": {"type": "integer", "minimum": 1},
        "data_time_every": {"type": "integer", "minimum": 1},
    }
    merged_props = {**own, **props["train"]["properties"], **props["study"]["items"]["properties"]}
    for k in ("model", "flownet", "nvvl"):
        merged_props[k] = props[k]
    return {
        "type": "object",
        "additionalProperties": False,
        "definitions": full.get("definitions", {}),
        "properties": merged_props,
    }


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


def merged(cfg: dict) -> dict:
    """DEFAULTS overlaid with `cfg` (one level deep for sections), validated."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"--cfg must be a JSON object, got {type(cfg).__name__}")
    schema = trainer_schema()
    _unknown(cfg, schema["properties"])
    out = copy.deepcopy(DEFAULTS)
    for k, v in cfg.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    validate(out)
    return out


def validate(cfg: dict) -> None:
    import jsonschema

    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(trainer_schema()).iter_errors(cfg))
    if err is not None:
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"setting {key}: {err.message}")
    if cfg["lr_min"] > cfg["lr_max"]:
        raise ConfigError(f"lr_min {cfg['lr_min']} is above lr_max {cfg['lr_max']}")


def changed_settings(old: dict, new: dict) -> list[str]:
    """Keys (outside EXTENSIBLE) whose values differ: a run cannot continue across them."""
    keys = (set(old) | set(new)) - EXTENSIBLE
    return sorted(
        k for k in keys if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True)
    )
