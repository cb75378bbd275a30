"""torchrun with the rendezvous taken from the allocation: the same command serves 1 process on
a laptop, N GPUs of one node (standalone) and several nodes (c10d rendezvous on the first node
of the SLURM allocation, or VSR_RDZV_ENDPOINT / VSR_NNODES set by hand).

    python -m vsr.train.launch --nproc-per-node 8 -m vsr.train --cfg ... --data ... --out ...
"""

from __future__ import annotations

import argparse
import os
import subprocess


def rendezvous(env=os.environ) -> tuple[int, str | None, str]:
    """(nodes, endpoint host:port or None for standalone, run id)."""
    nnodes = int(env.get("VSR_NNODES") or env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
    endpoint = env.get("VSR_RDZV_ENDPOINT")
    if nnodes > 1 and not endpoint and env.get("SLURM_JOB_NODELIST"):
        host = subprocess.run(
            ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        endpoint = f"{host}:{env.get('VSR_RDZV_PORT', '29400')}"
    run_id = env.get("SLURM_JOB_ID", "vsr")
    return nnodes, (endpoint if nnodes > 1 else None), run_id


def torchrun_args(nproc: int, rest: list[str], env=os.environ) -> list[str]:
    nnodes, endpoint, run_id = rendezvous(env)
    args = [f"--nproc-per-node={nproc}"]
    if endpoint:
        args += [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={run_id}",
        ]
    else:
        args += ["--standalone"]
    return args + rest


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nproc-per-node", type=int, default=1)
    a, rest = ap.parse_known_args(argv)
    from torch.distributed.run import main as torchrun

    torchrun(torchrun_args(a.nproc_per_node, rest))


if __name__ == "__main__":
    main()
