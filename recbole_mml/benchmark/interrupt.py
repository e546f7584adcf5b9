"""Stopping a benchmark cleanly: SIGTERM and Ctrl+C become one exception that ends the run under way."""

import contextlib
import signal
import threading

from recbole_mml.errors import BenchmarkInterrupted


@contextlib.contextmanager
def interruptible(message):
    """SIGTERM (``kill``, ``timeout``, a job scheduler) and Ctrl+C raise BenchmarkInterrupted(message).

    Without this a SIGTERM ends the driver alone and its run's subprocess trains on, orphaned;
    an exception in the driver makes ``subprocess.run`` kill it. The run goes on from its last
    saved state the next time the command runs (a Ray run's task ends with the driver's Ray)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        yield
        return

    def stop(signum, frame):
        raise BenchmarkInterrupted(message)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except KeyboardInterrupt:
        raise BenchmarkInterrupted(message) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
