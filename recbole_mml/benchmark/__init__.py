"""Models x datasets x seeds (x a swept key) -> results.csv, results.md, significance tests, plots.

    python run_recbole_mml.py benchmark --config properties/benchmark/ml100k_smoke.yaml
    python run_recbole_mml.py benchmark --config my.yaml --dry-run      (list the runs)
    python run_recbole_mml.py benchmark --config my.yaml --report-only  (rebuild results.md)

The yaml names the runs::

    output_dir: saved/benchmarks/gowalla    # results.csv, results.md, logs/<run>.log
    datasets: [gowalla]
    seeds: [2020, 2021, 2022]
    baseline: BPR                           # paired tests of every other label against it (or [BPR, EASE])
    common: {epochs: 20, torch_num_threads: 1}   # overrides for every run
    dataset_overrides: {gowalla: {...}}     # per data set
    models:                                 # a model name, or a labelled variant
      - MMLMF
      - {label: MMLMF-CCL, model: MMLMF, overrides: {loss_type: CCL, neg_weight: 150}}
      - BPR
    model_overrides: {BPR: {...}}           # per label (or model name)
    sweep: {key: num_negatives, values: [10, 100, 800]}   # optional: also vary one key

A thin layer on :mod:`recbole_mml.quick_start`, one module per job: :mod:`~.spec` (the yaml and the
runs it plans), :mod:`~.execute` (one run, in a subprocess or in this process), :mod:`~.results`
(results.csv), :mod:`~.distributed` (runs as Ray tasks: ``--jobs``, ``--address``), :mod:`~.stats` (mean ± std over seeds, paired tests), :mod:`~.report` (results.md,
the sweep plot), :mod:`~.interrupt` (SIGTERM and Ctrl+C end the run under way) and :mod:`~.runner`
(the command).

Every run is one subprocess (``isolation: inprocess`` to run in this process), so memory of one
run (EASE's dense item matrix) is freed before the next. A run appends one row to results.csv
as soon as it ends and results.md is rebuilt, so an interrupted benchmark keeps what it finished;
run the same command again and every run already in results.csv is skipped.
"""
