"""One named logger tree (`vsr.*`) printing `[name] message` on the console."""

import logging
import sys


def get(name: str) -> logging.Logger:
    """The logger `name` (e.g. "vsr.train"); the first call installs the console handler."""
    root = logging.getLogger("vsr")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(name)
