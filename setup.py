"""recbole_mml: the Multi-Margin Loss for RecBole.

RecBole 1.2.1 itself must be installed with ``pip install --no-deps recbole==1.2.1``: its metadata
pins ``ray<=2.6.3`` (which cannot import beside numpy 2) and old colorlog/colorama. The
dependencies below are what RecBole and recbole_mml really need on today's stack; recbole_mml.compat
makes RecBole run on them. ``make setup`` does both steps.

The yaml defaults stay in the repository's top-level ``properties/`` and are installed as
``recbole_mml/properties`` (``package_dir``), where recbole_mml.config finds them in a wheel.
"""

from setuptools import find_packages, setup

RECBOLE_RUNTIME = [
    "numpy>=2",
    "scipy>=1.13",
    "pandas>=2.2",
    "torch>=2.6",
    "tqdm",
    "colorlog",
    "colorama",
    "scikit-learn",
    "pyyaml",
    "tensorboard",
    "thop",
    "tabulate",
    "plotly",
    "texttable",
    "psutil",
]

setup(
    name="recbole_mml",
    version="0.1.0",
    description="Multi-Margin (Cosine) Loss for RecBole, with fair, fast benchmarks and Ray Tune searches",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",  # RecBole's license
    packages=find_packages(include=["recbole_mml", "recbole_mml.*"]) + ["recbole_mml.properties"],
    package_dir={"recbole_mml.properties": "properties"},
    package_data={"recbole_mml.properties": ["*.yaml", "**/*.yaml", "**/*.hyper"]},
    python_requires=">=3.10",  # tests/test_package.py holds the sources to 3.10
    install_requires=RECBOLE_RUNTIME + ["matplotlib", "ray[tune]>=2.40", "optuna>=3"],
    extras_require={
        "test": ["pytest>=7"],
        # RecBole's NCL clusters embeddings with faiss (its gpu=True falls back to the CPU in faiss-cpu)
        "baselines": ["faiss-cpu>=1.7.3"],
    },
    entry_points={"console_scripts": ["recbole-mml=recbole_mml.cli:main"]},
)
