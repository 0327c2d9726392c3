"""Marks the notebooks (collected by nbval) as slow, so ``make test-fast`` skips them."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
