"""The search driver: Ray (a private local one, or an existing cluster), the Tuner with its searcher
and scheduler, resuming, and interruptions.

Ray Tune stops a run gracefully on Ctrl+C (SIGINT) and SIGUSR1, saving the experiment so it can be
restored; a SIGTERM (a job scheduler, ``timeout``) is turned into the same graceful stop. Either way
the search ends with one line saying how to continue it with ``--resume``.
"""

import contextlib
import os
import signal
import sys
import threading
import time

from recbole_mml.errors import ConfigError, SearchInterrupted
from recbole_mml.quick_start import split_dataset
from recbole_mml.ray_session import attach_ray, init_local_ray
from recbole_mml.tune.args import parse_args, resume_command, save_args
from recbole_mml.tune.outputs import EXPERIMENT_NAME, write_outputs
from recbole_mml.tune.plan import plan_search
from recbole_mml.tune.trainable import train_trial


def _searcher(args, metric, mode, seed):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if args.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(metric=metric, mode=mode, seed=seed)
        return ConcurrencyLimiter(searcher, max_concurrent=args.max_concurrent) if args.max_concurrent else searcher
    return BasicVariantGenerator(max_concurrent=args.max_concurrent or 0, random_state=seed)


def _scheduler(args, setup, config):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if args.scheduler == "fifo":
        return FIFOScheduler()
    if {"epochs", "eval_step"} & set(setup.space.keys):
        max_t = 10**6  # the trials' own epochs end them
    else:
        max_t = max(1, config["epochs"] // config["eval_step"])
    return ASHAScheduler(
        time_attr="training_iteration", max_t=max_t, grace_period=min(args.grace_period, max_t),
        reduction_factor=args.reduction_factor,
    )


class GracefulStop:
    """SIGTERM (and Ctrl+C outside Ray Tune's run loop) stops the search as Ctrl+C inside it does.

    Inside ``Tuner.fit`` a SIGTERM becomes Ray Tune's own graceful stop (its SIGUSR1 handler: the
    experiment is saved, the trials' checkpoints kept); anywhere else it raises SearchInterrupted.
    ``ray.init`` installs Ray's own SIGTERM handler (a stack dump, then exit), so :meth:`take_over`
    installs this one again once Ray has started.
    """

    def __init__(self, output):
        self.message = f"search interrupted; continue it with: {resume_command(output)}"
        self.fitting = False

    def __call__(self, signum, frame):
        if self.fitting and callable(signal.getsignal(signal.SIGUSR1)):  # Ray Tune's handler is in place
            signal.raise_signal(signal.SIGUSR1)
        else:
            raise SearchInterrupted(self.message)

    @staticmethod
    def _main_thread():
        return threading.current_thread() is threading.main_thread()  # signal handlers: main thread only

    def take_over(self):
        if self._main_thread():
            signal.signal(signal.SIGTERM, self)

    @contextlib.contextmanager
    def installed(self):
        if not self._main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGTERM, self)
        try:
            yield self
        except KeyboardInterrupt:
            raise SearchInterrupted(self.message) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    @contextlib.contextmanager
    def fit(self):
        self.fitting = True
        try:
            yield
        finally:
            self.fitting = False


def _tuner(args, setup, config, split, mode):
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, setup=setup, split=split),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    experiment = os.path.join(args.output, EXPERIMENT_NAME)
    if args.resume and tune.Tuner.can_restore(experiment):
        return tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True)
    return tune.Tuner(  # a new search, or one interrupted before Ray saved its first state
        trainable,
        param_space=setup.space.to_ray(grid=args.search == "grid"),
        tune_config=tune.TuneConfig(
            metric=setup.rank_metric, mode=mode, num_samples=args.num_samples,
            search_alg=_searcher(args, setup.rank_metric, mode, config["seed"]),
            scheduler=_scheduler(args, setup, config),
            reuse_actors=True,  # a worker that has imported torch and RecBole runs the next trial
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT_NAME, storage_path=args.output,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )


def run_search(args):
    """Run (or resume) the search and write its outputs; returns the exit code."""
    import ray

    if not args.resume and os.path.exists(os.path.join(args.output, EXPERIMENT_NAME)):
        raise ConfigError(
            f"--output: '{args.output}' already holds a search; continue it with --resume or pick another folder"
        )
    setup, config, shared = plan_search(args)
    mode = "max" if config["valid_metric_bigger"] else "min"
    if not args.resume:
        save_args(args)  # from here on, --resume continues this search
    with GracefulStop(args.output).installed() as stop:
        started = not ray.is_initialized()
        try:
            if started and args.address:
                attach_ray(args.address)
            elif started:
                init_local_ray()
            stop.take_over()
            split = None
            if shared:
                start = time.perf_counter()
                split = split_dataset(config)
                print(f"dataset {setup.dataset} loaded and split once in {time.perf_counter() - start:.1f}s; "
                      f"trials share it through Ray's object store")
            tuner = _tuner(args, setup, config, split, mode)
            with stop.fit():
                tuner.fit()
            expected = setup.space.trial_count(args.num_samples, grid=args.search == "grid")
            return write_outputs(args.output, setup, config, split, mode, expected)
        finally:
            if started:
                ray.shutdown()


def main(argv=None):
    """``run_recbole_mml.py tune ...``: search, then write trials.csv, best.yaml and best_test.json."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_search(args)
