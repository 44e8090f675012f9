"""Where the seed playbooks are: ``../shared/fixtures/seed`` beside the checkout (as CI lays it out),
or the folder named by ``NOETL_SEED_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def seed_dir() -> Path:
    path = Path(os.environ.get("NOETL_SEED_DIR") or ROOT.parent / "shared" / "fixtures" / "seed")
    if not sorted(path.glob("*.yaml")):
        pytest.fail(f"seed playbooks not found in {path}: the tests expect the project's shared/ folder beside "
                    "the checkout (../shared/fixtures/seed), or NOETL_SEED_DIR=/path/to/seed", pytrace=False)
    return path
