"""Config and registry: recbole_mml's defaults on top of RecBole's, RecBole's precedence, lookups in both."""

import sys

import pytest

from recbole.model.general_recommender.bpr import BPR
from recbole.trainer import RecVAETrainer, Trainer

from recbole_mml.config import Config, parse_overrides
from recbole_mml.errors import ConfigError
from recbole_mml.model.general_recommender import MMLLightGCN, MMLMF, MMLSimpleX
from recbole_mml.registry import get_model, get_trainer, own_model_names
from recbole_mml.trainer import MMLTrainer


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


def test_trainers_ours_for_our_models_recbole_for_theirs():
    config = Config("RecVAE", "ml-100k")
    assert get_trainer(config["MODEL_TYPE"], "MMLMF") is MMLTrainer
    assert get_trainer(config["MODEL_TYPE"], "BPR") is Trainer
    assert get_trainer(config["MODEL_TYPE"], "RecVAE") is RecVAETrainer
