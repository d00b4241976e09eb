"""Decode workers stay light (no torch) and yield the CPU to the model."""

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is a Linux feature")
def test_decoders_run_below_the_models_priority_without_slowing_the_model_itself():
    import os
    import threading

    from glimpse.indexer.decode import DECODER_NICENESS, lower_thread_priority
    from glimpse.indexer.reader import decode_pool

    pool = decode_pool(1)
    try:
        assert pool.submit(os.nice, 0).result(timeout=60) == DECODER_NICENESS
    finally:
        pool.shutdown()
    seen: list[int] = []

    def decoding_thread() -> None:
        lower_thread_priority()
        seen.append(os.nice(0))

    before = os.nice(0)
    thread = threading.Thread(target=decoding_thread)
    thread.start()
    thread.join()
    # The decoding thread yields; the thread that runs the model (this one) keeps its priority.
    assert seen == [DECODER_NICENESS] and os.nice(0) == before
