"""Hyper-parameter search with Ray Tune, on this machine or on an existing Ray cluster.

    python run_recbole_mml.py tune --model=MMLMF --dataset=ml-100k \\
        --params_file=properties/search/mmlmf.yaml --num_samples=20 [--key=value ...]
    python run_recbole_mml.py tune --resume --output=DIR

A thin layer on :mod:`recbole_mml.quick_start`, one module per job:

- :mod:`~recbole_mml.tune.space`: the search-space file (RecBole hyper syntax or yaml) as Ray domains;
- :mod:`~recbole_mml.tune.args`: the command line, and the saved arguments a resumed search reads;
- :mod:`~recbole_mml.tune.plan`: what every trial shares, checked before Ray starts;
- :mod:`~recbole_mml.tune.trainable`: one trial, RecBole's training reporting to Ray after each evaluation;
- :mod:`~recbole_mml.tune.driver`: Ray, the Tuner (searcher, scheduler), resuming and interruptions;
- :mod:`~recbole_mml.tune.outputs`: ``trials.csv``, ``best.yaml`` and ``best_test.json``.

The dataset is loaded and split once, in the driver; trials take the split from Ray's object
store and build their own loaders with their own config (so ``train_batch_size`` can be searched).
A search over a key that changes the split itself (``eval_args``, ``seed``, filters, ...) prepares
the data in every trial instead.
"""
