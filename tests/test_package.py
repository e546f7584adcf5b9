"""The package as a library: no import cycles, a torch-only loss, a wheel that carries its yaml
defaults and trains like the checkout, sources that run on the Python setup.py names."""

import ast
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "recbole_mml")
# stdlib names newer than python_requires (3.10) that a source file could reach for
NEWER_THAN_310 = {"contextlib.chdir", "tomllib", "datetime.UTC", "typing.Self", "enum.StrEnum", "ExceptionGroup",
                  "asyncio.TaskGroup", "hashlib.file_digest"}


def package_modules():
    """``{module name: path}`` of every module in recbole_mml."""
    modules = {}
    for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
        parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(path, modules):
    """The recbole_mml modules ``path`` imports, at module level or inside functions."""
    def module_of(name):  # 'pkg.module.function' -> 'pkg.module'
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {module_of(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {module_of(f"{node.module}.{alias.name}") for alias in node.names}
    return found - {""}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    modules = package_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert "recbole_mml.quick_start" in graph["recbole_mml.tune.trainable"]  # the walk sees real edges
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_loss_imports_torch_only():
    code = ("import sys, recbole_mml.loss; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'recbole', 'ray', 'pandas', 'scipy'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def names_used(tree):
    """Dotted names a module reaches: ``x.y`` attributes of a name, imported names, bare names."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_sources_use_nothing_newer_than_python_310():
    for path in package_modules().values():
        tree = ast.parse(open(path, encoding="utf-8").read(), filename=path, feature_version=(3, 10))
        assert not names_used(tree) & NEWER_THAN_310, path
    assert names_used(ast.parse("import contextlib\nwith contextlib.chdir('x'): pass")) & NEWER_THAN_310


def build_wheel(out):
    """The wheel of a clean copy of the sources (building in the checkout would leave build/ there)."""
    src = os.path.join(out, "src")
    os.makedirs(src)
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), src)
    for name in ("recbole_mml", "properties"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(src, name),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, src],
                   check=True, capture_output=True, timeout=300)
    wheel, = glob.glob(os.path.join(out, "*.whl"))
    return wheel


def test_the_wheel_carries_every_yaml_default(tmp_path):
    names = zipfile.ZipFile(build_wheel(str(tmp_path))).namelist()
    properties = {os.path.relpath(p, os.path.join(ROOT, "properties")).replace(os.sep, "/")
                  for p in glob.glob(os.path.join(ROOT, "properties", "**", "*"), recursive=True) if os.path.isfile(p)}
    assert {"overall.yaml", "model/MMLMF.yaml", "model/ContrastiveRecommender.yaml"} <= properties
    assert {f"recbole_mml/properties/{p}" for p in properties} <= set(names)
    assert "recbole_mml/tune/driver.py" in names and any(n.endswith("licenses/LICENSE") for n in names)


@pytest.mark.slow
def test_the_installed_wheel_trains_mmlmf_with_the_checkouts_defaults(tmp_path):
    """Installed (not editable) and run away from the checkout: the same defaults, one epoch on ml-100k."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    build_wheel(str(tmp_path / "wheel"))], check=True, capture_output=True, timeout=300)
    code = ("import recbole_mml, sys; from recbole_mml.quick_start import build_config, run; "
            "c = build_config('MMLMF', 'ml-100k'); print(recbole_mml.__file__); "
            "print(c['margins'], c['neg_weight'], c['eval_batch_size']); "
            "r = run('MMLMF', 'ml-100k', config_dict={'epochs': 1, 'show_progress': False, 'num_negatives': 10}); "
            "print(type(r['test_result']['ndcg@10']).__name__)")
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    installed, defaults, result_type = done.stdout.strip().splitlines()[-3:]
    assert installed.startswith(str(target))
    shared = yaml.safe_load(open(os.path.join(ROOT, "properties", "model", "ContrastiveRecommender.yaml")))
    expected = f"{shared['margins']} {float(shared['neg_weight'])} {shared['eval_batch_size']}"
    assert defaults == expected and result_type == "float"  # the checkout's defaults, read from the wheel
