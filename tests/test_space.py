"""The search space: validated configurations and the grid agents move on."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legal_hpo_env.space import DEFAULT_RECIPE, SPACE, HyperParamError, HyperParams

LOWEST = dict(
    learning_rate=1e-5, batch_size=4, weight_decay=0.0, warmup_ratio=0.0, epochs=1, dropout=0.0, class_weighting="none"
)
HIGHEST = dict(
    learning_rate=1.0, batch_size=64, weight_decay=0.1, warmup_ratio=0.2, epochs=8, dropout=0.3,
    class_weighting="balanced",
)


# -- validation -------------------------------------------------------------------


def test_defaults_are_lexglue_recipe():
    assert DEFAULT_RECIPE == HyperParams()
    assert (DEFAULT_RECIPE.learning_rate, DEFAULT_RECIPE.batch_size) == (3e-5, 8)
    assert SPACE.names == tuple(HyperParams().to_dict())


def test_numpy_scalars_become_native_types():
    config = HyperParams(
        learning_rate=np.float32(1e-4),
        batch_size=np.int64(16),
        weight_decay=np.float64(0.01),
        warmup_ratio=np.float16(0.125),
        epochs=np.int32(2),
        dropout=np.float64(0.2),
    )
    for name in ("learning_rate", "weight_decay", "warmup_ratio", "dropout"):
        assert type(getattr(config, name)) is float, name
    for name in ("batch_size", "epochs"):
        assert type(getattr(config, name)) is int, name
    assert config.batch_size == 16 and config.epochs == 2 and config.warmup_ratio == 0.125
    assert config.learning_rate == pytest.approx(1e-4, rel=1e-6)
    # A whole float is accepted for an integer field, and converted.
    whole = HyperParams(batch_size=np.float64(32.0), epochs=5.0)
    assert (whole.batch_size, whole.epochs) == (32, 5)
    assert type(whole.batch_size) is int and type(whole.epochs) is int
    # Integers are accepted for float fields and become floats.
    assert type(HyperParams(weight_decay=0).weight_decay) is float
    # Configs that differ only in the numeric type are equal and hash the same.
    assert HyperParams(batch_size=np.int64(8), dropout=np.float64(0.1)) == DEFAULT_RECIPE
    assert hash(HyperParams(batch_size=np.int64(8))) == hash(DEFAULT_RECIPE)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"learning_rate": math.nan}, ["learning_rate", "[1e-07, 1]"]),
        ({"learning_rate": math.inf}, ["learning_rate", "[1e-07, 1]"]),
        ({"learning_rate": -math.inf}, ["learning_rate", "[1e-07, 1]"]),
        ({"learning_rate": 2.0}, ["learning_rate", "[1e-07, 1]"]),
        ({"learning_rate": 0.0}, ["learning_rate", "[1e-07, 1]"]),
        ({"learning_rate": "3e-5"}, ["learning_rate", "[1e-07, 1]", "str"]),
        ({"learning_rate": True}, ["learning_rate", "[1e-07, 1]", "bool"]),
        ({"batch_size": 0}, ["batch_size", "[1, 4096]"]),
        ({"batch_size": 5000}, ["batch_size", "[1, 4096]"]),
        ({"batch_size": True}, ["batch_size", "[1, 4096]", "bool"]),
        ({"batch_size": "8"}, ["batch_size", "[1, 4096]", "str"]),
        ({"batch_size": 8.5}, ["batch_size", "[1, 4096]", "whole"]),
        ({"epochs": math.inf}, ["epochs", "[1, 100]"]),
        ({"epochs": math.nan}, ["epochs", "[1, 100]"]),
        ({"epochs": 101}, ["epochs", "[1, 100]"]),
        ({"epochs": False}, ["epochs", "[1, 100]", "bool"]),
        ({"weight_decay": -0.01}, ["weight_decay", "[0, 1]"]),
        ({"warmup_ratio": 0.6}, ["warmup_ratio", "[0, 0.5]"]),
        ({"dropout": 0.95}, ["dropout", "[0, 0.9]"]),
        ({"dropout": None}, ["dropout", "[0, 0.9]", "NoneType"]),
        ({"class_weighting": "weird"}, ["class_weighting", "'none'", "'balanced'"]),
        ({"class_weighting": 1}, ["class_weighting", "'none'", "'balanced'"]),
        ({"class_weighting": True}, ["class_weighting", "'none'", "'balanced'"]),
    ],
)
def test_invalid_values_name_parameter_and_range(changes, expected):
    with pytest.raises(HyperParamError) as info:
        HyperParams(**changes)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, (fragment, message)
    # The same through the mapping constructor and replace().
    with pytest.raises(HyperParamError):
        HyperParams.from_dict(changes)
    with pytest.raises(HyperParamError):
        DEFAULT_RECIPE.replace(**changes)


def test_hyperparam_error_is_value_error():
    assert issubclass(HyperParamError, ValueError)


def test_range_ends_are_valid():
    low = HyperParams(learning_rate=1e-7, batch_size=1, weight_decay=0.0, warmup_ratio=0.0, epochs=1, dropout=0.0)
    high = HyperParams(learning_rate=1.0, batch_size=4096, weight_decay=1.0, warmup_ratio=0.5, epochs=100, dropout=0.9)
    assert low.learning_rate == 1e-7 and high.batch_size == 4096


def test_unknown_keys_are_named_with_valid_names():
    with pytest.raises(HyperParamError) as info:
        HyperParams.from_dict({"lr": 1e-4, "learning_rate": 1e-4, "momentum": 0.9})
    message = str(info.value)
    assert "'lr'" in message and "'momentum'" in message
    for name in SPACE.names:
        assert name in message
    with pytest.raises(HyperParamError, match="'lr'"):
        DEFAULT_RECIPE.replace(lr=1e-3)


def test_from_dict_to_dict_round_trip_and_replace():
    config = HyperParams(learning_rate=1e-4, batch_size=16, class_weighting="balanced")
    assert HyperParams.from_dict(config.to_dict()) == config
    expected = HyperParams(learning_rate=1e-4, batch_size=16, class_weighting="balanced", epochs=5)
    assert config.replace(epochs=5) == expected
    assert config.epochs == 3  # frozen: replace returns a new object


# -- grid encode / decode ---------------------------------------------------------


def test_every_grid_index_round_trips():
    ranges = [range(len(d.grid)) for d in SPACE.dimensions]
    count = 0
    for indices in itertools.product(*ranges):
        config = SPACE.from_indices(indices)
        assert SPACE.to_indices(config) == indices
        count += 1
    assert count == SPACE.size() == 15 * 5 * 3 * 4 * 5 * 4 * 2


def test_grid_points_are_every_configuration_once():
    # on a small restricted space, so that it stays fast
    sub = SPACE.restricted([HyperParams(**LOWEST), HyperParams(**HIGHEST)])
    points = sub.grid_points()
    assert len(points) == len(set(points)) == sub.size() == 2**7
    assert HyperParams(**LOWEST) in points and HyperParams(**HIGHEST) in points


def test_from_indices_values_and_clipping():
    assert SPACE.from_indices([0] * 7) == HyperParams(**LOWEST)
    assert SPACE.from_indices([len(d.grid) - 1 for d in SPACE.dimensions]) == HyperParams(**HIGHEST)
    # Indices past an end are clipped to it.
    assert SPACE.from_indices([-3] * 7) == HyperParams(**LOWEST)
    assert SPACE.from_indices([99] * 7) == HyperParams(**HIGHEST)
    assert SPACE.from_indices(np.array([3, 2, 1, 0, 4, 1, 1])) == HyperParams(
        learning_rate=5e-5, batch_size=16, weight_decay=0.01, warmup_ratio=0.0, epochs=8, dropout=0.1,
        class_weighting="balanced",
    )
    with pytest.raises(ValueError):
        SPACE.from_indices([0] * 6)


def test_to_indices_snaps_to_nearest_grid_point():
    # learning rate in log space: |ln(4/3)| = 0.288 > |ln(5/4)| = 0.223, so 4e-5 -> 5e-5
    assert SPACE.to_indices(HyperParams(learning_rate=4e-5))[0] == 3
    # batch size in log space: ln(12/8) = 0.405 > ln(16/12) = 0.288, so 12 -> 16
    assert SPACE.to_indices(HyperParams(batch_size=12))[1] == 2
    # linear dimensions: dropout 0.26 -> 0.3; warmup 0.04 -> 0.06
    assert SPACE.to_indices(HyperParams(dropout=0.26))[5] == 3
    assert SPACE.to_indices(HyperParams(warmup_ratio=0.04))[3] == 1
    # below and above the grid: the ends
    assert SPACE.to_indices(HyperParams(learning_rate=1e-7, epochs=100))[0::4] == (0, 4)
    assert SPACE.to_indices(DEFAULT_RECIPE) == (2, 1, 0, 2, 2, 1, 0)


def test_decode_unit_hits_the_ends_and_clips():
    assert SPACE.decode_unit([-1.0] * 7) == HyperParams(**LOWEST)
    assert SPACE.decode_unit([1.0] * 7) == HyperParams(**HIGHEST)
    assert SPACE.decode_unit([-7.5] * 7) == HyperParams(**LOWEST)
    assert SPACE.decode_unit([42.0] * 7) == HyperParams(**HIGHEST)
    assert SPACE.decode_unit(np.full(7, -1.0, dtype=np.float32)) == HyperParams(**LOWEST)
    # u = 0 -> index round((n - 1) / 2), Python rounding half to even:
    # lr 15 values -> 7 (5e-4); batch 5 -> 2 (16); decay 3 -> 1 (0.01);
    # warmup 4 -> round(1.5) = 2 (0.1); epochs 5 -> 2 (3); dropout 4 -> 2 (0.2); weighting 2 -> round(0.5) = 0
    assert SPACE.decode_unit([0.0] * 7) == HyperParams(
        learning_rate=5e-4, batch_size=16, weight_decay=0.01, warmup_ratio=0.1, epochs=3, dropout=0.2,
        class_weighting="none",
    )
    with pytest.raises(ValueError):
        SPACE.decode_unit([0.0] * 8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7))
def test_decode_unit_lands_on_the_grid(unit):
    config = SPACE.decode_unit(unit)
    for d in SPACE.dimensions:
        assert getattr(config, d.name) in d.grid
    # decoding is monotone per dimension: a larger unit value never gives a lower index
    indices = SPACE.to_indices(config)
    higher = SPACE.to_indices(SPACE.decode_unit([min(1.0, u + 0.3) for u in unit]))
    assert all(h >= i for h, i in zip(higher, indices))


# -- normalisation ----------------------------------------------------------------


def test_normalise_hand_computed():
    config = HyperParams(
        learning_rate=1e-4, batch_size=16, weight_decay=0.01, warmup_ratio=0.1, epochs=3, dropout=0.1,
        class_weighting="balanced",
    )
    expected = [
        1 / 5,  # ln(1e-4 / 1e-5) / ln(1 / 1e-5) = 1/5
        0.5,  # log2(16 / 4) / log2(64 / 4) = 2/4
        0.1,  # 0.01 / 0.1
        0.5,  # 0.1 / 0.2
        2 / 7,  # (3 - 1) / (8 - 1)
        1 / 3,  # 0.1 / 0.3
        1.0,  # "balanced" is the last category
    ]
    assert SPACE.normalise(config) == pytest.approx(expected)
    assert SPACE.normalise(HyperParams(**LOWEST)) == [0.0] * 7
    assert SPACE.normalise(HyperParams(**HIGHEST)) == pytest.approx([1.0] * 7)


valid_configs = st.builds(
    HyperParams,
    learning_rate=st.floats(1e-7, 1.0),
    batch_size=st.integers(1, 4096),
    weight_decay=st.floats(0.0, 1.0),
    warmup_ratio=st.floats(0.0, 0.5),
    epochs=st.integers(1, 100),
    dropout=st.floats(0.0, 0.9),
    class_weighting=st.sampled_from(["none", "balanced"]),
)


@settings(max_examples=300, deadline=None)
@given(valid_configs)
def test_normalise_in_unit_interval_and_snapping_is_idempotent(config):
    values = SPACE.normalise(config)
    assert len(values) == len(SPACE)
    assert all(0.0 <= v <= 1.0 for v in values)
    snapped = SPACE.from_indices(SPACE.to_indices(config))
    assert SPACE.to_indices(snapped) == SPACE.to_indices(config)
    assert SPACE.from_indices(SPACE.to_indices(snapped)) == snapped


# -- restricted sub-grid ----------------------------------------------------------


def test_restricted_sub_grid():
    configs = [
        HyperParams(learning_rate=1e-4, batch_size=16),
        HyperParams(learning_rate=3e-5, class_weighting="balanced"),
        HyperParams(learning_rate=1e-4, batch_size=8),
    ]
    sub = SPACE.restricted(configs)
    grids = {d.name: d.grid for d in sub.dimensions}
    assert grids == {
        "learning_rate": (3e-5, 1e-4),
        "batch_size": (8, 16),
        "weight_decay": (0.0,),
        "warmup_ratio": (0.1,),
        "epochs": (3,),
        "dropout": (0.1,),
        "class_weighting": ("none", "balanced"),
    }
    assert sub.names == SPACE.names
    assert sub.size() == 2 * 2 * 2
    # ranges and scales are the full space's
    assert sub["learning_rate"].log and sub["learning_rate"].low == SPACE["learning_rate"].low
    # a fixed dimension normalises to 0; the sub-grid's ends to 0 and 1
    assert sub.normalise(HyperParams(learning_rate=1e-4, batch_size=16, class_weighting="balanced")) == [1.0] * 2 + [
        0.0
    ] * 4 + [1.0]
    assert sub.decode_unit([-1.0] * 7) == HyperParams(learning_rate=3e-5, batch_size=8)
    assert sub.decode_unit([1.0] * 7) == HyperParams(learning_rate=1e-4, batch_size=16, class_weighting="balanced")
    assert sub.from_indices([5] * 7) == sub.decode_unit([1.0] * 7)
    assert set(sub.grid_points()) >= set(configs)


def test_space_lookup_names_valid_dimensions():
    assert SPACE["epochs"].grid == (1, 2, 3, 5, 8)
    with pytest.raises(KeyError, match="learning_rate"):
        SPACE["momentum"]
