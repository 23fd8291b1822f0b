"""Fixtures shared by the test modules (the project's pytest plugin and run order are in the root conftest.py)."""
from __future__ import annotations

import pytest

from harness.inference.models import BUNDLED_MANIFEST, ModelSet


@pytest.fixture(scope="module")
def models():
    """The bundled models, opened once per test module, as the simulated app runs them."""
    with ModelSet.open(BUNDLED_MANIFEST) as opened:
        yield opened
