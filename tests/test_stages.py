"""CI stages choose scenarios, tier and parameters, and every parameter a stage sets reaches a notebook."""

from __future__ import annotations

import papermill
import pytest

from k6suite_lib.cli import _apply_stage, build_parser
from k6suite_lib.runner import NOTEBOOKS, SCENARIOS
from k6suite_lib.scenarios import s3_correctness as s3
from k6suite_lib.stages import STAGES, resolve


def test_pr_stage_is_s1_and_the_s3_core():
    scenarios, tier, parameters = resolve("pr", None, None, {})
    assert (scenarios, tier) == (["S1", "S3"], "smoke")
    assert set(parameters["variants"]) < set(s3.VARIANTS) and "overlap" in parameters["variants"]


def test_command_line_parameters_win_and_choices_beside_a_stage_are_refused():
    assert resolve("main", None, None, {"kinds": ["kill"]})[2]["kinds"] == ["kill"]
    assert resolve("release", None, None, {})[1:] == ("full", {"repeats": 3})
    with pytest.raises(ValueError, match="--stage chooses"):
        resolve("pr", ["S4"], None, {})
    with pytest.raises(ValueError, match="--stage chooses"):
        resolve("pr", None, "full", {})
    with pytest.raises(ValueError, match="unknown stage"):
        resolve("nightly", None, None, {})


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_parameter_is_declared_by_one_of_its_notebooks(name):
    """A misspelt parameter would be dropped silently by the runner (it passes only declared ones)."""
    stage = STAGES[name]
    assert set(stage.scenarios) <= set(SCENARIOS)
    declared = set().union(*(papermill.inspect_notebook(str(NOTEBOOKS / SCENARIOS[sid].notebook))
                             for sid in stage.scenarios))
    assert set(stage.parameters) <= declared, set(stage.parameters) - declared


def test_s3_variants_are_checked():
    assert s3.chosen(None) is None
    assert s3.chosen(["overlap"]) == frozenset({"overlap"})
    with pytest.raises(ValueError, match="unknown S3 variant"):
        s3.chosen(["overlap", "overlapp"])


def test_the_command_line_applies_a_stage():
    args = build_parser().parse_args(["run", "--stage", "main", "--param", "rate=50"])
    _apply_stage(args)
    assert args.scenarios == ["S4", "S5", "S5b"] and args.tier == "smoke"
    assert sorted(args.param) == ['kinds=["kill", "pause"]', "rate=50"]
    plain = build_parser().parse_args(["run", "--scenarios", "S3"])
    _apply_stage(plain)
    assert (plain.scenarios, plain.tier, plain.param) == (["S3"], "smoke", [])
