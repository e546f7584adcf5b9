"""Benchmark runs as Ray tasks: several at once on this machine (``--jobs N``) or on an existing Ray
cluster (``--address``), each with its own CPU (and GPU) budget; rows come back as tasks finish.

A benchmark is many independent runs, so Ray's tasks are enough (the search needs Tune's trials,
a benchmark does not). Each run goes through :func:`~recbole_mml.benchmark.execute.execute`, as
in a subprocess; its torch threads are its CPU budget, unless the run's config sets them.
"""

import os
import time

from recbole_mml.benchmark.execute import execute
from recbole_mml.benchmark.results import state_dir


def run_task(run, cpus, workdir, per_user=False, out_dir=None, every_s=None, start_by=None):
    """One run inside a Ray worker, in the driver's working folder where this node has it (relative
    ``data_path`` values then mean what they mean to the driver), resumable through its folder under
    ``out_dir`` on this node. None, without running, once ``start_by`` (epoch seconds) has passed: a
    task waits for a free CPU, so only the task knows when it would start."""
    if start_by is not None and time.time() > start_by:
        return None
    if workdir and os.path.isdir(workdir):
        os.chdir(workdir)
    config = dict(run["config"])
    config.setdefault("torch_num_threads", max(1, int(cpus)))
    folder = state_dir(out_dir, run["run_id"]) if out_dir else None
    return execute(run["model"], run["dataset"], config, per_user=per_user, state_dir=folder, every_s=every_s)


def run_on_ray(runs, address=None, jobs=None, cpus_per_run=1, gpus_per_run=0, per_user=False, out_dir=None,
               every_s=None, start_by=None):
    """Yield ``(run, row, error)`` for every run, in the order they finish; each row carries its
    per-user test scores when ``per_user`` (they come back to the driver, which writes them). A run
    whose latest start in ``start_by`` (run id -> epoch seconds) had passed when a CPU came free
    yields ``(run, None, None)``.

    Without ``address`` a private local Ray with ``jobs`` CPUs is started (and shut down at the
    end); with one, the runs go to that cluster. A run that fails yields its last error line and
    the others go on.
    """
    import ray

    from recbole_mml.ray_session import attach_ray, init_local_ray

    started = not ray.is_initialized()
    if started:
        attach_ray(address) if address else init_local_ray(num_cpus=jobs)
    try:
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(run_task)
        start_by = start_by or {}
        pending = {task.remote(run, cpus_per_run, os.getcwd(), per_user, out_dir, every_s,
                               start_by.get(run["run_id"])): run for run in runs}
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done)
            try:
                yield run, ray.get(done), None
            except ray.exceptions.RayTaskError as e:
                cause = str(e.cause if getattr(e, "cause", None) is not None else e).strip().splitlines()
                yield run, None, cause[-1] if cause else repr(e)
    finally:
        if started:
            ray.shutdown()
