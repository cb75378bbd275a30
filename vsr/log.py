"""One named logger tree (`vsr.*`) printing `[name] message` on the console."""

import logging
import sys


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a rule's log, pytest's capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def get(name: str) -> logging.Logger:
    """The logger `name` (e.g. "vsr.train"); the first call installs the console handler."""
    root = logging.getLogger("vsr")
    if not root.handlers:
        h = _Stderr()
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(name)
