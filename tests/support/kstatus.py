"""kstatus, the real one: what Flux's status library (sigs.k8s.io/cli-utils/pkg/kstatus/status) makes
of a Kubernetes object, by running the small Go program in scripts/control-plane.d/kstatus/.

`scripts/control-plane build` puts it at ``${CLOUDEYE_CACHE:-<repo>/.cache}/control-plane/bin/kstatus``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import REPO


def kstatus_binary() -> Path:
    cache = Path(os.environ.get("CLOUDEYE_CACHE") or REPO / ".cache")
    return cache / "control-plane" / "bin" / "kstatus"


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus's (status, message) for one object: InProgress, Current, Failed, Terminating, ..."""
    binary = kstatus_binary()
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run scripts/control-plane build", pytrace=False)
    proc = subprocess.run(
        [str(binary)], input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"kstatus exited {proc.returncode}: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    if len(lines) != 1:
        raise AssertionError(f"kstatus printed {len(lines)} lines for one object:\n{proc.stdout}")
    result = json.loads(lines[0])
    return str(result["status"]), str(result["message"])
