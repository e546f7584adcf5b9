"""Ray for the commands that use it (search trials, benchmark runs): a private local Ray, or an
existing cluster that receives this source tree."""

import os

import recbole_mml
from recbole_mml.errors import ConfigError


def source_root():
    """The checkout recbole_mml runs from (``setup.py`` beside the package), or None when installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(recbole_mml.__file__)))
    return root if os.path.isfile(os.path.join(root, "setup.py")) else None


def init_local_ray(num_cpus=None):
    """Start a private local Ray whose workers import recbole_mml as this process does."""
    import ray

    paths = [source_root()] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    ray.init(
        address="local", num_cpus=num_cpus, include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if p))}},
    )


def attach_ray(address):
    """Join an existing cluster and, from a checkout, ship the source tree to its workers (Ray's
    runtime_env working_dir, which leaves out what .gitignore lists); the nodes need the same packages."""
    import ray

    root = source_root()
    try:
        ray.init(address=address, runtime_env={"working_dir": root} if root else None)
    except ConnectionError as e:
        raise ConfigError(
            f"--address: cannot join the Ray cluster at '{address}' ({e}); a cluster with token "
            f"authentication (Ray's default) needs RAY_AUTH_MODE=token and its token"
        ) from None
