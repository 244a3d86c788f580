"""The notebooks' contract with the runner and with users: one parameters cell papermill can read,
the parameters the runner injects, thin cells, and a verdict table last.

Tools are notebooks the runner never runs (explore.ipynb looks at a run that already happened): they
declare their own parameters and end with their own verdict table; the rest of the contract holds."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

from k6suite_lib.runner import SCENARIOS

NOTEBOOKS = sorted(Path("notebooks").glob("*.ipynb"))
RUNNER_PARAMETERS = {"profile", "tier", "out_dir", "run_id"}
MAX_CELL_LINES = 15  # logic lives in k6suite_lib; a longer cell is a sign it leaked into the notebook
# tool notebook -> (parameters it must declare, its last cell: the verdict table)
TOOLS = {"explore.ipynb": ({"run_id", "system", "scenario", "variant", "history", "window", "max_anomalies"},
                           "explore.verdict_table(runs)")}


def test_every_notebook_is_a_scenario_of_the_runner_or_a_tool():
    assert {path.name for path in NOTEBOOKS} == {spec.notebook for spec in SCENARIOS.values()} | set(TOOLS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_readable_by_papermill(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    source = tagged[0].source
    assigned = {node.targets[0].id for node in ast.parse(source).body if isinstance(node, ast.Assign)}
    # every assignment must be understood by papermill, or `papermill --help-notebook` hides it
    inspected = {parameter.name for parameter in PythonTranslator.inspect(tagged[0])}
    assert inspected == assigned, f"{path.name}: papermill cannot read {sorted(assigned - inspected)}"
    required = TOOLS[path.name][0] if path.name in TOOLS else RUNNER_PARAMETERS
    assert assigned >= required, f"{path.name}: missing {sorted(required - assigned)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_thin_and_end_with_the_verdicts(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    long_cells = [c.source.splitlines()[0] for c in code if len(c.source.splitlines()) > MAX_CELL_LINES]
    assert not long_cells, f"{path.name}: cells over {MAX_CELL_LINES} lines: {long_cells}"
    last = TOOLS[path.name][1] if path.name in TOOLS else "sc.finish()"
    assert code[-1].source.strip() == last, f"{path.name}: the last cell must render the verdict table"
    assert all(not c.get("outputs") for c in code), f"{path.name}: committed with outputs"
