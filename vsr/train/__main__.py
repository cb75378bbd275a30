"""`python -m vsr.train`: the trainer (vsr/train/loop.py)."""

from vsr.train.loop import main

main()
