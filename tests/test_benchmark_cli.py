"""The protocol's command line: pretraining levers reach ``pretrain`` as keyword
arguments, are recorded only when set (so older results files still merge), and a
malformed one is a usage error that says how to write it."""

import importlib
import sys
from pathlib import Path

import pytest

from rdlviz.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
protocol = importlib.import_module("protocol")


def _configs(argv):
    p = protocol.parser("rel-f1", ["driver-dnf"], "doc")
    return protocol.configs(p, p.parse_args(argv))


def test_defaults_record_no_pretraining_lever():
    pre, ft = _configs([])
    assert set(pre) == {"steps", "channels", "num_neighbors", "patience"}
    assert not {"train_history", "val_history", "reference_time", "wise_alpha", "temporal_strategy",
                "min_steps_per_epoch", "pair_features", "test_history"} & set(ft)


def test_explicit_uniform_pretraining_draw_keeps_the_default_config():
    # the cache key is the pretraining config: spelling out the default must not re-pretrain
    assert _configs(["--pretrain-temporal-strategy", "uniform"])[0] == _configs([])[0]


def test_reference_time_becomes_a_finetune_kwarg():
    _, ft = _configs(["--reference-time", "history"])
    assert ft["reference_time"] == "history"


def test_test_history_reaches_every_variant_and_is_checked_before_training(shop, shop_links):
    _, ft = _configs(["--test-history", "seed"])
    for variant in protocol.VARIANTS:  # what test seeds see: the same for every variant
        assert protocol.variant_config(variant, ft)[1]["test_history"] == "seed"
    protocol.check_config(ft, protocol.VARIANTS)
    assert protocol.check_tasks(shop, ["customer-order"], ft) == {"customer-order": "binary"}
    with pytest.raises(ConfigError, match="test_history='seed'"):
        protocol.check_config(_configs(["--test-history", "seed", "--val-history", "cutoff"])[1], ["scratch"])
    with pytest.raises(ConfigError, match="test_history='seed' is for entity tasks"):
        protocol.check_tasks(shop_links, ["customer-product"], ft)


def test_min_steps_per_epoch_is_a_finetune_kwarg_every_variant_shares():
    _, ft = _configs(["--min-steps-per-epoch", "20"])
    for variant in protocol.VARIANTS:  # a budget: the same for every variant
        assert protocol.variant_config(variant, ft)[1]["min_steps_per_epoch"] == 20
    protocol.check_config(ft, protocol.VARIANTS)


def test_no_pair_features_reaches_link_tasks_and_is_refused_for_entity_tasks(shop, shop_links):
    _, ft = _configs(["--no-pair-features"])
    for variant in protocol.VARIANTS:  # the same model for every variant
        assert protocol.variant_config(variant, ft)[1]["pair_features"] is False
    kinds = protocol.check_tasks(shop_links, ["customer-product"], ft)
    assert kinds == {"customer-product": "link"}
    # The results' config tells the pair term apart from the two towers alone (the first
    # link results, which carry no key), and says nothing where no link task ran.
    assert protocol.link_model(kinds, ft) == {}
    assert protocol.link_model(kinds, {}) == {"link_model": "two-tower + pair term"}
    assert protocol.link_model({"customer-order": "binary"}, {}) == {}
    with pytest.raises(ConfigError, match="pair_features is for link tasks"):
        protocol.check_tasks(shop, ["customer-order"], ft)


def test_clamp_regression_reaches_every_variant_and_only_regression_tasks(f1, shop):
    assert "clamp_predictions" not in _configs([])[1]  # recorded only when set
    _, ft = _configs(["--clamp-regression"])
    for variant in protocol.VARIANTS:  # evaluation, not training: the same for every variant
        assert protocol.variant_config(variant, ft)[1]["clamp_predictions"] is True
    protocol.check_config(ft, protocol.VARIANTS)
    assert protocol.check_tasks(f1, ["driver-position"], ft) == {"driver-position": "regression"}
    with pytest.raises(ConfigError, match="'driver-dnf' is a binary task"):
        protocol.check_tasks(f1, ["driver-position", "driver-dnf"], ft)
    with pytest.raises(ConfigError, match="clamp_predictions"):
        protocol.check_tasks(shop, ["customer-order"], ft)


def test_wise_alpha_becomes_a_finetune_kwarg():
    _, ft = _configs(["--wise-alpha", "0.5"])
    assert ft["wise_alpha"] == 0.5
    _, ft = _configs(["--wise-alpha", "0.25", "0.5", "1"])  # candidates, chosen on validation
    assert ft["wise_alpha"] == [0.25, 0.5, 1.0]


def test_temporal_strategy_becomes_a_finetune_kwarg_every_variant_shares():
    _, ft = _configs(["--temporal-strategy", "last", "--num-neighbors", "16", "8"])
    assert ft["temporal_strategy"] == "last" and ft["num_neighbors"] == (16, 8)
    for variant in protocol.VARIANTS:  # the same sampler for every variant
        assert protocol.variant_config(variant, ft)[1]["temporal_strategy"] == "last"


def test_pretraining_levers_become_pretrain_kwargs():
    pre, _ = _configs(["--seed-tables", "drivers", "--seed-weighting", "uniform",
                       "--objective-weights", "link=0.5", "row=2",
                       "--corruption-p", "0.5", "--link-holdout", "0.3",
                       "--pretrain-temporal-strategy", "last"])
    assert pre["seed_tables"] == ["drivers"]
    assert pre["seed_weighting"] == "uniform"
    assert pre["weights"] == {"link": 0.5, "row": 2.0}
    assert pre["corruption_p"] == 0.5
    assert pre["link_holdout"] == 0.3
    assert pre["temporal_strategy"] == "last"


@pytest.mark.parametrize("item", ["link", "lnk=0.5", "link=half"])
def test_malformed_objective_weight_is_a_usage_error(item, capsys):
    with pytest.raises(SystemExit) as e:
        _configs(["--objective-weights", item])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert item in err and "link=0.5" in err
