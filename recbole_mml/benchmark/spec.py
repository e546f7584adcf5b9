"""The plan of a benchmark: the yaml, checked, and the runs it asks for (models x datasets x seeds,
optionally x the values of one swept key)."""

import os

import yaml

from recbole_mml.errors import ConfigError

BENCHMARK_KEYS = {
    "output_dir", "datasets", "seeds", "baseline", "common", "dataset_overrides", "models",
    "model_overrides", "sweep", "isolation", "timeout", "metrics", "plot", "resume_every_s",
}
MODEL_KEYS = {"label", "model", "overrides"}


def load_spec(path):
    """The benchmark yaml as a checked dict; ConfigError names the file and the bad key."""
    if not os.path.isfile(path):
        raise ConfigError(f"benchmark config '{path}' does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            spec = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"benchmark config '{path}' is not valid yaml: {str(e).splitlines()[0]}") from None
    return check_spec(spec, path)


def check_spec(spec, where="benchmark config"):
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of key: value")
    unknown = set(spec) - BENCHMARK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(BENCHMARK_KEYS)}")
    for key in ("models", "datasets"):
        if not spec.get(key) or not isinstance(spec[key], list):
            raise ConfigError(f"{where}: '{key}' must be a non-empty list")
    spec = dict(spec)
    spec.setdefault("seeds", [2020])
    spec.setdefault("output_dir", os.path.join("saved", "benchmarks"))  # beside RecBole's saved/ checkpoints
    spec.setdefault("isolation", "subprocess")
    # how often a run saves what it needs to go on after a kill (recbole_mml.run_state); 0: every epoch
    spec.setdefault("resume_every_s", 60.0)
    every = spec["resume_every_s"]
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not every >= 0:
        raise ConfigError(f"{where}: resume_every_s must be a number of seconds >= 0, got {every!r}")
    if spec["isolation"] not in ("subprocess", "inprocess"):
        raise ConfigError(f"{where}: isolation must be subprocess or inprocess, got {spec['isolation']!r}")
    models = []
    for entry in spec["models"]:
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or "model" not in entry or set(entry) - MODEL_KEYS:
            raise ConfigError(f"{where}: a models entry is a name or {{label, model, overrides}}, got {entry!r}")
        models.append({"label": str(entry.get("label", entry["model"])), "model": entry["model"],
                       "overrides": dict(entry.get("overrides") or {})})
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: model labels must be unique, got {labels}")
    spec["models"] = models
    baselines = spec.get("baseline") or []
    baselines = [baselines] if isinstance(baselines, str) else baselines
    if not isinstance(baselines, list):
        raise ConfigError(f"{where}: baseline must be a model label or a list of them, got {spec['baseline']!r}")
    for baseline in baselines:
        if baseline not in labels:
            raise ConfigError(f"{where}: baseline {baseline!r} is not one of the model labels {labels}")
    spec["baseline"] = baselines  # one list: each label is tested against every baseline
    sweep = spec.get("sweep")
    if sweep is not None:
        if not isinstance(sweep, dict) or set(sweep) != {"key", "values"} or not sweep["values"]:
            raise ConfigError(f"{where}: sweep must be {{key: NAME, values: [..]}}, got {sweep!r}")
    return spec


def plan_runs(spec):
    """Every run as a dict (run_id, label, model, dataset, seed, sweep, config overrides), in order.

    Seeds are the outer loop, so a budget that runs out still has every model on the first seed;
    within a seed the yaml's order of data sets, swept values and models decides what runs first.
    """
    sweep = spec.get("sweep")
    sweep_values = sweep["values"] if sweep else [None]
    runs = []
    for seed in spec["seeds"]:
        for dataset in spec["datasets"]:
            for value in sweep_values:
                for entry in spec["models"]:
                    config = {}
                    config.update(spec.get("common") or {})
                    config.update((spec.get("dataset_overrides") or {}).get(dataset) or {})
                    model_overrides = spec.get("model_overrides") or {}
                    config.update(model_overrides.get(entry["model"]) or {})
                    if entry["label"] != entry["model"]:
                        config.update(model_overrides.get(entry["label"]) or {})
                    config.update(entry["overrides"])
                    config["seed"] = int(seed)
                    parts = [entry["label"], dataset, f"seed={seed}"]
                    if sweep:
                        config[sweep["key"]] = value
                        parts.insert(1, f"{sweep['key']}={value}")
                    runs.append({
                        "run_id": "|".join(parts), "label": entry["label"], "model": entry["model"],
                        "dataset": dataset, "seed": int(seed),
                        "sweep_key": sweep["key"] if sweep else "", "sweep_value": value,
                        "config": config,
                    })
    return runs
