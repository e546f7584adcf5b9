"""Config and registry: recbole_mml's defaults on top of RecBole's, RecBole's precedence and key
names, lookups in both."""

import os
import sys

import pytest

import recbole
from recbole.model.general_recommender.bpr import BPR
from recbole.evaluator import Collector
from recbole.trainer import DecisionTreeTrainer, RecVAETrainer, Trainer

from recbole_mml.collector import TopKCollector
from recbole_mml.config import Config, parse_overrides
from recbole_mml.errors import ConfigError
from recbole_mml.model.general_recommender import MMLLightGCN, MMLMF, MMLSimpleX
from recbole_mml.quick_start import build_config, build_trainer, prepare_data, run
from recbole_mml.registry import get_model, get_trainer, own_model_names
from recbole_mml.trainer import RECBOLE_MML_MIXINS, MMLTrainer, RunCheckpoints, with_recbole_mml

from conftest import TINY

RECBOLE_SIMPLEX_YAML = os.path.join(os.path.dirname(recbole.__file__), "properties", "model", "SimpleX.yaml")


def test_model_defaults_come_from_base_and_model_yaml():
    config = Config("MMLSimpleX", "ml-100k")
    assert config["neg_sharing"] == "row"  # ContrastiveRecommender.yaml
    assert config["aggregator"] == "mean" and config["history_len"] == 50  # MMLSimpleX.yaml
    assert config["train_batch_size"] == 2048  # RecBole's overall.yaml
    assert config["strict_config_keys"] is True  # recbole_mml's overall.yaml
    assert config["train_neg_sample_args"]["distribution"] == "none"  # positives only from the loader


def test_precedence_model_default_lt_file_lt_dict_lt_override(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text("num_negatives: 11\nneg_weight: 5.0\nlearning_rate: 0.5\nmargins: [0.1, 0.2, 0.3]\n")
    config = Config("MMLMF", "ml-100k", config_file_list=[str(path)],
                    config_dict={"neg_weight": 6.0, "learning_rate": 0.25},
                    cmd_args=["--learning_rate=0.125", "--weights=[1,1,1]"])
    assert config["num_negatives"] == 11  # file beats model default
    assert config["margins"] == [0.1, 0.2, 0.3]
    assert config["neg_weight"] == 6.0  # dict beats file
    assert config["learning_rate"] == 0.125  # override beats everything
    assert config["weights"] == [1, 1, 1]


def test_config_never_reads_the_process_command_line(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["driver.py", "--epochs=99", "--margins=[0.1]"])
    config = Config("MMLMF", "ml-100k")
    assert config["epochs"] == 300 and config["margins"] != [0.1]


@pytest.mark.parametrize("arg", ["epochs=3", "--epochs", "--=3", "-x=1"])
def test_malformed_overrides_are_refused(arg):
    with pytest.raises(ConfigError, match="malformed override"):
        parse_overrides([arg])


def test_bad_config_files_are_refused_naming_the_file(tmp_path):
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml': expected a mapping"):
        Config("MMLMF", "ml-100k", config_file_list=[str(not_mapping)])
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml' is not valid yaml"):
        Config("MMLMF", "ml-100k", config_file_list=[str(broken)])


def test_registry_looks_in_recbole_mml_first_then_recbole():
    assert get_model("MMLMF") is MMLMF and get_model("MMLSimpleX") is MMLSimpleX
    assert get_model("MMLLightGCN") is MMLLightGCN and get_model("BPR") is BPR
    assert own_model_names() == ["MMLLightGCN", "MMLMF", "MMLSimpleX"]
    with pytest.raises(ConfigError, match="did you mean 'MMLMF'"):
        get_model("MMLMf")


def test_trainers_ours_for_our_models_recbole_for_theirs_all_with_recbole_mmls_checkpoints():
    config = Config("RecVAE", "ml-100k")
    assert get_trainer(config["MODEL_TYPE"], "MMLMF") is MMLTrainer
    bpr, recvae = get_trainer(config["MODEL_TYPE"], "BPR"), get_trainer(config["MODEL_TYPE"], "RecVAE")
    assert bpr.__bases__ == (*RECBOLE_MML_MIXINS, Trainer) and recvae.__bases__ == (*RECBOLE_MML_MIXINS, RecVAETrainer)
    assert MMLTrainer.__bases__ == (*RECBOLE_MML_MIXINS, Trainer)
    assert get_trainer(config["MODEL_TYPE"], "BPR") is bpr  # one class per RecBole trainer
    assert "_save_checkpoint" not in vars(Trainer) or Trainer._save_checkpoint is not RunCheckpoints._save_checkpoint
    assert with_recbole_mml(DecisionTreeTrainer) is DecisionTreeTrainer  # saves its own way: left as it is


def test_recboles_models_evaluate_to_recboles_numbers_through_recbole_mmls_trainer(workdir):
    """RecBole's BPR, evaluated by its trainer in recbole_mml (TopKCollector) and by RecBole's own
    ``Trainer`` (RecBole's Collector), from the same weights."""
    config = build_config("BPR", "tiny", config_dict=dict(TINY, metrics=["Recall", "NDCG", "Hit", "MRR"], topk=[3, 10]))
    dataset, train_data, valid_data, _ = prepare_data(config)
    ours = build_trainer(config, dataset, train_data)
    ours._train_epoch(train_data, 0)
    assert type(ours.eval_collector) is TopKCollector
    theirs = Trainer(config, ours.model)
    assert type(theirs.eval_collector) is Collector
    assert ours.evaluate(valid_data, load_best_model=False) == theirs.evaluate(valid_data, load_best_model=False)


def test_a_recbole_simplex_yaml_runs_on_mmlsimplex_with_ccl(workdir, caplog):
    """RecBole's own SimpleX.yaml (margin 0.5, negative_weight 10, ...) plus RecBole's negative
    sampling and loss_type CCL: the same settings, read under recbole_mml's names."""
    user_yaml = workdir / "simplex.yaml"
    with open(RECBOLE_SIMPLEX_YAML, encoding="utf-8") as f:
        user_yaml.write_text(f.read() + "\ntrain_neg_sample_args: {distribution: uniform, sample_num: 7}\nloss_type: CCL\n")
    result = run("MMLSimpleX", "tiny", config_file_list=[str(user_yaml)], config_dict=dict(TINY, epochs=1), saved=False)
    assert 0 < result["test_result"]["ndcg@10"] <= 1
    config = build_config("MMLSimpleX", "tiny", config_file_list=[str(user_yaml)], config_dict=TINY)
    assert (config["ccl_margin"], config["neg_weight"], config["num_negatives"]) == (0.5, 10, 7)
    assert config["neg_distribution"] == "uniform" and config["train_neg_sample_args"]["distribution"] == "none"
    assert config["gamma"] == 0.5 and config["reg_weight"] == 1e-05  # the same names in both
    notice, = [r.getMessage() for r in caplog.records if "RecBole's config keys" in r.getMessage()][-1:]
    assert "margin as ccl_margin = 0.5" in notice and "train_neg_sample_args.sample_num as num_negatives = 7" in notice


def test_recbole_names_are_read_only_where_they_mean_the_same():
    # RecBole's default for a given train_neg_sample_args without sample_num: one negative
    config = build_config("MMLMF", "tiny", config_dict=dict(TINY, train_neg_sample_args={"distribution": "popularity"}))
    assert (config["num_negatives"], config["neg_distribution"]) == (1, "popularity")
    # with MML, 'margin' means nothing: still an unknown key, with the closest known one
    with pytest.raises(ConfigError, match="unknown config key 'margin' for model MMLMF; did you mean 'margins'"):
        build_config("MMLMF", "tiny", config_dict=dict(TINY, margin=0.5))
    with pytest.raises(ConfigError, match="'negative_weight' .* is 10 but 'neg_weight' is 150"):
        build_config("MMLMF", "tiny", config_dict=dict(TINY, negative_weight=10, neg_weight=150))
    with pytest.raises(ConfigError, match="train_neg_sample_args: dynamic .* not supported"):
        build_config("MMLMF", "tiny", config_dict=dict(TINY, train_neg_sample_args={"dynamic": True}))
    assert build_config("SimpleX", "tiny", config_dict=dict(TINY, margin=0.8))["margin"] == 0.8  # RecBole's own model
