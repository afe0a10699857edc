"""Shared fixtures, and the ``extension`` mark: tests of rnnkit's C++ extension itself skip
where it is not built (``RNNKIT_NO_EXTENSION=1``); every other test runs the other paths."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    from rnnkit.kernels import fused

    if fused.available():
        return
    skip = pytest.mark.skip(reason="rnnkit's C++ extension is not built (RNNKIT_NO_EXTENSION=1, or a failed build)")
    for item in items:
        if "extension" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
