"""The command line as a separate process: signals and closed pipes end it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_sigterm_removes_the_partial_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reanimate",
            "animate",
            str(EXAMPLES / "source.png"),
            str(EXAMPLES / "driving.mp4"),
            "-o",
            str(out / "result.mp4"),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(out.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the temporary output exists
    assert process.poll() is None, "finished before it could be stopped"
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "SIGTERM" in err and "Traceback" not in err
    assert not list(out.iterdir()), "the temporary output was left behind"


def test_a_closed_pipe_ends_quietly(tmp_path):
    command = f"{sys.executable} -m reanimate faces {EXAMPLES / 'driving.mp4'} | head -c 100 > /dev/null"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
