"""The workflow scripts' edge: run one Snakemake script step with its log and a one-line error."""

from __future__ import annotations

import logging
import sys
import traceback

from vsr.errors import VsrError


def _route_logger(console, log) -> None:
    """`vsr.*` log lines (progress, warnings) go to the console and into the rule's log."""
    root = logging.getLogger("vsr")
    for h in list(root.handlers):
        root.removeHandler(h)
    for stream in {id(console): console, id(log): log}.values():
        h = logging.StreamHandler(stream)
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(h)
    root.setLevel(logging.INFO)
    root.propagate = False


def script_main(snakemake, fn, *args, **kwargs):
    """Run one Snakemake script step: everything goes to the rule's log, `vsr.*` log lines to
    the console too; on failure the traceback stays in the log and the one-line cause is the
    last word on the console."""
    console = sys.stderr
    log = open(snakemake.log[0], "w") if snakemake.log else console
    sys.stderr = log
    _route_logger(console, log)
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        traceback.print_exc(file=log)
        log.flush()
        msg = str(e) if isinstance(e, VsrError) else f"{type(e).__name__}: {e}"
        print(f"rule {snakemake.rule}: {' '.join(msg.split())}", file=console, flush=True)
        sys.exit(1)
