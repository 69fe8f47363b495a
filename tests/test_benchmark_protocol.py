"""``benchmarks/protocol.py`` end to end on the packaged tables, at a tiny size."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna")

from benchmarks import common, protocol  # noqa: E402


@pytest.mark.usefixtures("torch_one_thread")
def test_the_protocol_holds_each_family_out_and_reports_every_method(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(protocol, "RESULTS", tmp_path)
    # transfer: the tuners are fitted on head-v2's tasks, tested on head-v1's
    protocol.main(["--table", "head-v1", "--train-table", "head-v2", "--seeds", "2", "--budget", "6",
                   "--steps", "240", "--agents", "reinforce", "--output", "tiny"])
    data = json.loads((tmp_path / "tiny.json").read_text())
    setup, summary = data["setup"], data["summary"]
    assert setup["table"] == "head-v1" and setup["train_table"] == "head-v2"
    folds = setup["folds"]
    assert sorted(t for fold in folds.values() for t in fold["test"]) == sorted(data["tasks"])  # each task once
    for fold in folds.values():  # trained on head-v2's 31 tasks less the held-out family's
        assert 0 < fold["train"] < 31
    assert folds["case_law"]["train"] == folds["terms_of_service"]["train"] == 31 - 1  # one task each
    names = set(summary["dev"])
    assert {"random", "tpe", "asha", "default", "oracle", "fixed-direct", "fixed-delta", "reinforce-direct",
            "reinforce-direct-blanked", "reinforce-delta", "reinforce-delta-blanked",
            "reinforce-delta@random-start"} <= names
    assert set(data["cost"]) == names and all(seconds > 0 for seconds in data["cost"].values())
    for split in ("dev", "test"):
        for name, row in summary[split].items():
            mean = row["regret"]["mean"]
            assert len(mean) == 6 and all(0.0 <= r <= 1.0 for r in mean)
            assert (row["mean_rank"] is None) == (name == "oracle")
            assert (row["vs_tpe"] is None) == (name == "tpe")
    assert summary["dev"]["oracle"]["regret"]["mean"][-1] == 0.0
    # each learned method is tested against its blanked self and the fixed sequence of its mode and start
    for name in ("reinforce-direct", "reinforce-delta", "reinforce-delta@random-start"):
        assert {"vs_blanked", "vs_fixed"} <= set(summary["dev"][name])
    assert "vs_blanked" not in summary["dev"]["reinforce-delta-blanked"] and "vs_fixed" not in summary["dev"]["tpe"]
    assert protocol.references("ppo-delta@random-start", ["ppo"]) == {
        "blanked": "ppo-delta-blanked@random-start", "fixed": "fixed-delta@random-start"}
    assert (tmp_path / "tiny-regret.png").is_file() and (tmp_path / "landscape-head-v1.png").is_file()
