"""Search spaces for ``recbole_mml.tune``: a RecBole hyper file or a yaml file, as Ray Tune domains.

RecBole's hyper file (any name not ending in ``.yaml``/``.yml``), one ``name type values`` a line,
read as RecBole's HyperTuning reads it::

    learning_rate loguniform -8,0          # exp(uniform(-8, 0)): natural-log bounds, as hyperopt
    neg_weight uniform 100,800
    embedding_size quniform 32,128,32      # round(uniform(32, 128) / 32) * 32
    neg_sharing choice ['row','batch']

The yaml form (``.yaml``/``.yml``) maps a key to one distribution, or to a plain value that every
trial gets. Its ``loguniform`` bounds are plain values, as in Ray's ``tune.loguniform``::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
    margins: {choice: [[0.9], [0.8, 0.9]]}

In both forms a name that joins keys with commas chooses them together, one list of values per
option (MML's margins and weights must have the same length)::

    margins,weights: {choice: [[[0.9], [1.0]], [[0.8, 0.9], [0.25, 0.75]]]}

Choices that are not plain scalars (lists, mappings, joint options) reach Ray as their json text,
so every searcher (Optuna included) sees plain categories; :meth:`SearchSpace.decode` turns a
trial's sampled values back into config values.
"""

import ast
import difflib
import json
import math
import os
from dataclasses import dataclass

import yaml

from recbole_mml.errors import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "quniform", "loguniform")
YAML_SUFFIXES = (".yaml", ".yml")
_SCALARS = (type(None), bool, int, float, str)


@dataclass
class Param:
    """One entry of a search space: ``kind`` is a distribution name or ``fixed``.

    ``args``: the options (choice), ``(low, high)`` (uniform; loguniform with plain bounds),
    ``(low, high, q)`` (quniform) or ``(value,)`` (fixed). ``keys`` are the config keys it sets.
    """

    name: str
    kind: str
    args: tuple
    where: str

    @property
    def keys(self):
        return [k.strip() for k in self.name.split(",")]

    @property
    def joint(self):
        return len(self.keys) > 1

    def _encoded(self):
        """Choice options as Ray sees them: the values themselves if plain scalars, else json text."""
        if self.joint or not all(isinstance(v, _SCALARS) for v in self.args):
            return [_label(v) for v in self.args]
        return list(self.args)

    def grid_values(self):
        """The finite values of a choice or quniform, or None for a continuous distribution."""
        if self.kind == "choice":
            return self._encoded()
        if self.kind == "quniform":
            low, high, q = self.args
            values = [k * q for k in range(round(low / q), round(high / q) + 1)]
            return [int(v) if _all_int(self.args) else round(v, 12) for v in values]
        return None

    def to_ray(self, grid=False):
        from ray import tune

        if self.kind == "fixed":
            return self.args[0]
        if grid:
            values = self.grid_values()
            if values is None:
                raise ConfigError(
                    f"{self.where}: --search grid needs a finite set of values, but '{self.name}' is "
                    f"{self.kind}; use choice or quniform, or --search random|optuna"
                )
            return tune.grid_search(values)
        if self.kind == "choice":
            return tune.choice(self._encoded())
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        low, high, q = self.args
        if _all_int(self.args):  # integer keys (embedding_size) must reach RecBole as int, not 64.0
            return tune.qrandint(int(low), int(high), int(q))
        return tune.quniform(low, high, q)

    def first(self):
        """A value this entry can take (the first option or the lower bound), for checking keys early."""
        if self.kind in ("choice", "fixed"):
            value = self.args[0]
        elif self.kind == "quniform":
            value = self.grid_values()[0]
        else:
            value = self.args[0]
        return self._split(value)

    def decode(self, sampled):
        """``{config key: value}`` for the value Ray sampled for this entry."""
        if self.kind == "choice" and isinstance(sampled, str) and self._encoded() != list(self.args):
            sampled = self.args[self._encoded().index(sampled)]
        return self._split(sampled)

    def _split(self, value):
        if not self.joint:
            return {self.name: value}
        return dict(zip(self.keys, value))


def _label(value):
    return json.dumps(value, default=str)


def _all_int(numbers):
    return all(float(x).is_integer() for x in numbers)


class SearchSpace:
    """The parsed file: ``params`` in file order, ``path`` for messages."""

    def __init__(self, params, path):
        self.params = params
        self.path = path

    @property
    def keys(self):
        """Every config key the space sets."""
        return [k for p in self.params for k in p.keys]

    def where(self, key):
        """``'file, line N'`` of the entry that sets ``key``."""
        return next(p.where for p in self.params if key in p.keys)

    def to_ray(self, grid=False):
        """The ``param_space`` for ``ray.tune.Tuner``."""
        return {p.name: p.to_ray(grid) for p in self.params}

    def trial_count(self, num_samples, grid=False):
        """How many trials the search creates: ``num_samples``, times the grid's size under grid search
        (as Ray Tune's variant generator counts them)."""
        if not grid:
            return num_samples
        return num_samples * math.prod(len(p.grid_values()) for p in self.params if p.kind != "fixed")

    def first(self):
        merged = {}
        for p in self.params:
            merged.update(p.first())
        return merged

    def decode(self, sampled):
        """Config values for a trial's sampled ``{entry name: value}``."""
        merged = {}
        for p in self.params:
            if p.name in sampled:
                merged.update(p.decode(sampled[p.name]))
        return merged


def load_search_space(path):
    """Parse ``path`` (yaml by extension, else RecBole's hyper syntax); ConfigError names file and line."""
    if not os.path.isfile(path):
        raise ConfigError(f"search space file '{path}' does not exist")
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    if path.lower().endswith(YAML_SUFFIXES):
        params = _parse_yaml(text, path)
    else:
        params = _parse_hyper(text, path)
    if not any(p.kind != "fixed" for p in params):
        raise ConfigError(
            f"search space file '{path}': no key to search (expected e.g. 'learning_rate loguniform -8,0')"
        )
    seen = {}
    for p in params:
        for key in p.keys:
            if not key:
                raise ConfigError(f"{p.where}: empty key in '{p.name}' (expected key or key1,key2)")
            if key in seen:
                raise ConfigError(f"{p.where}: key '{key}' is already searched at {seen[key]}")
            seen[key] = p.where
    return SearchSpace(params, path)


# RecBole's hyper-file syntax ---------------------------------------------------------------------

_HYPER_EXPECTED = {
    "choice": "a list, e.g. [64,96,128]",
    "uniform": "low,high with low < high",
    "quniform": "low,high,q with low <= high and q > 0",
    "loguniform": "low,high: natural-log bounds with low < high (e.g. -8,0 for exp(-8)..1)",
}


def _parse_hyper(text, path):
    params = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {lineno}"
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in DISTRIBUTIONS:
            raise ConfigError(
                f"{where}: expected 'name type values' with type one of {', '.join(DISTRIBUTIONS)}, got {line!r}"
            )
        name, kind, values = parts
        params.append(_hyper_param(name, kind, values, where))
    return params


def _hyper_param(name, kind, values, where):
    expected = f"{where}: {kind} for '{name}' expects {_HYPER_EXPECTED[kind]}, got {values!r}"
    if kind == "choice":
        try:
            options = ast.literal_eval(values)
        except (ValueError, SyntaxError):
            raise ConfigError(expected) from None
        return _choice(name, options, where, expected)
    try:
        numbers = [float(x) for x in values.replace(" ", "").split(",")]
    except ValueError:
        raise ConfigError(expected) from None
    bounds = _bounds(kind, numbers, expected)
    if kind == "loguniform":  # RecBole (hyperopt) takes natural-log bounds; Ray takes the values
        bounds = (math.exp(bounds[0]), math.exp(bounds[1]))
    return Param(name, kind, bounds, where)


def _bounds(kind, numbers, expected):
    size = 3 if kind == "quniform" else 2
    if len(numbers) != size or not all(math.isfinite(x) for x in numbers):
        raise ConfigError(expected)
    if kind == "quniform":
        low, high, q = numbers
        if low > high or q <= 0:
            raise ConfigError(expected)
        return (low, high, q)
    if numbers[0] >= numbers[1]:
        raise ConfigError(expected)
    return tuple(numbers)


def _choice(name, options, where, expected):
    if not isinstance(options, (list, tuple)) or not options:
        raise ConfigError(expected)
    options = list(options)
    width = len(name.split(","))
    if width > 1:
        for option in options:
            if not isinstance(option, (list, tuple)) or len(option) != width:
                raise ConfigError(
                    f"{where}: each option of '{name}' must list {width} values (one per key), got {option!r}"
                )
    encoded = [_label(v) for v in options]
    if len(set(encoded)) != len(encoded):
        raise ConfigError(f"{where}: choice for '{name}' repeats an option")
    return Param(name, "choice", tuple(options), where)


# yaml form ---------------------------------------------------------------------------------------

_YAML_EXPECTED = {
    "choice": "a non-empty list of options",
    "uniform": "[low, high] with low < high",
    "quniform": "[low, high, q] with low <= high and q > 0",
    "loguniform": "[low, high] with 0 < low < high (plain values, e.g. [1.0e-4, 1.0e-2])",
}


def _parse_yaml(text, path):
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"search space file '{path}': expected a mapping of key: distribution")
        params = []
        for key_node, value_node in root.value:
            where = f"{path}, line {key_node.start_mark.line + 1}"
            name = loader.construct_object(key_node, deep=True)
            value = loader.construct_object(value_node, deep=True)
            if not isinstance(name, str):
                raise ConfigError(f"{where}: expected a config key, got {name!r}")
            params.append(_yaml_param(name, value, where))
        return params
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid yaml ({getattr(e, 'problem', None) or e})") from None
    finally:
        loader.dispose()


def _yaml_param(name, value, where):
    if not (isinstance(value, dict) and len(value) == 1):
        if "," in name:
            raise ConfigError(f"{where}: keys chosen together ('{name}') need {{choice: [...]}}")
        return Param(name, "fixed", (value,), where)
    (kind, args), = value.items()
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        if close:
            raise ConfigError(f"{where}: unknown distribution '{kind}' for '{name}'; did you mean '{close[0]}'?")
        if "," in name:
            raise ConfigError(f"{where}: keys chosen together ('{name}') need {{choice: [...]}}")
        return Param(name, "fixed", (value,), where)
    expected = f"{where}: {kind} for '{name}' expects {_YAML_EXPECTED[kind]}, got {args!r}"
    if kind == "choice":
        return _choice(name, args, where, expected)
    if "," in name:
        raise ConfigError(f"{where}: keys chosen together ('{name}') need choice, not {kind}")
    if not isinstance(args, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in args):
        raise ConfigError(expected)
    bounds = _bounds(kind, [float(x) for x in args], expected)
    if kind == "loguniform" and bounds[0] <= 0:
        raise ConfigError(expected)
    return Param(name, kind, bounds, where)
