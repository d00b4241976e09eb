"""Decode workers stay light (no torch) and yield the CPU to the model."""

import os
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decode_workers_and_their_forkserver_end_when_the_indexer_is_killed(tmp_path):
    """A SIGKILLed indexer (or a test process that ends with a pool open) leaves no process behind."""
    import signal
    import subprocess
    import time

    script = tmp_path / "owner.py"
    script.write_text(
        "import os, time\n"
        "from glimpse.indexer.reader import decode_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = decode_pool(2)\n"
        "    pids = [pool.submit(os.getpid).result(timeout=60) for _ in range(8)]\n"
        "    print(' '.join(map(str, sorted(set(pids)))), flush=True)\n"
        "    time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = {int(p) for p in owner.stdout.readline().split()}  # type: ignore[union-attr]
        assert workers
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in workers):
            time.sleep(0.2)
        assert not [p for p in workers if os.path.exists(f"/proc/{p}")], "decode workers outlived the indexer"
    finally:
        if owner.poll() is None:
            owner.kill()
