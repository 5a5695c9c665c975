"""Train a few steps under torchrun with 2 CPU processes (gloo) and collect each rank's weights.

Import from tests as ``from two_ranks import fit_on_two_ranks``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# Run by each rank after the setup code has made ``trainer``.
_FIT = """
import os, torch
result = trainer.fit()
torch.save(dict(trainer.model.state_dict()), {out!r} + f"/rank{{os.environ['RANK']}}.pt")
print(f"steps {{result.state.step}} batch {{trainer.batch_per_rank}}", flush=True)  # one write per rank
"""


def fit_on_two_ranks(tmp_path: Path, setup: str) -> tuple[str, dict, dict]:
    """Run ``setup`` (Python that builds a training loop named ``trainer``) and its ``fit()``
    on two ranks. Returns the processes' standard output (a line ``steps S batch B`` per
    rank) and each rank's state dict; a failed run fails the test with its stderr."""
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(setup) + _FIT.format(out=str(tmp_path)))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    # --standalone: a free port for each run (a fixed one can still be held by the last run)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    return proc.stdout, ranks[0], ranks[1]
