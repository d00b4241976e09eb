"""Decode workers stay light: they must not pay for importing torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["glimpse.indexer.decode", "glimpse.cli"])
def test_what_a_decode_worker_imports_does_not_import_torch(module):
    # Each worker imports the decode module and re-imports the main module (the `glimpse` CLI):
    # torch there would cost seconds of CPU per worker, taken from the model on a small machine.
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
