"""The explore notebook's logic on planted histories, and the notebook itself on a real run's history."""

from __future__ import annotations

import base64
import random
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.figure import Figure

from k6suite_lib import explore, history, plots
from k6suite_lib.checkers import AnomalyRules, CheckSpec, recheck
from k6suite_lib.explore import ExploreError
from tests.histories import (
    S,
    Spec,
    Timeline,
    clean_rows,
    frame,
    plant_corrupted,
    plant_duplicate,
    plant_inconsistent,
)

CHECKS = [CheckSpec("anomalies", AnomalyRules().params()), CheckSpec("readback")]
PROXY = "0@127.0.0.1:29092"


def _save(path: Path, rows: pd.DataFrame | list[dict], variant: str = "v") -> Path:
    """A history saved as Scenario.judge saves one: with the composition that judges it."""
    data = rows if isinstance(rows, pd.DataFrame) else frame(rows)
    return history.save(data, path, meta={"checks": [c.to_json() for c in CHECKS], "scenario": "S4",
                                          "variant": variant, "run_id": "test-run"})


def _lost_during_a_fault() -> pd.DataFrame:
    """80 sends on one partition at 10/s from t=1 s, a broker kill from 4 s to 6 s, everything read at
    10 s except the send acknowledged at offset 45 (t=5.5 s): a lost write inside the fault."""
    t = Timeline()
    t.client_metrics(0.5, "producer-0", 1, [PROXY])
    t.sends(1, 9, rate=10)
    t.fault(4, 6)
    t.read_everything(10)
    return t.frame().query("not (f == 'poll' and offset == 45)").reset_index(drop=True)


def _open(tmp_path: Path, rows, variant: str = "v") -> list[explore.Explored]:
    return explore.open_histories(history=str(_save(tmp_path / f"history-{variant}.parquet", rows, variant)))


def test_a_lost_write_is_shown_among_its_neighbours_with_its_fault_and_broker(tmp_path):
    runs = _open(tmp_path, _lost_during_a_fault())
    summary = explore.anomaly_summary(runs, 10)  # the consumer stepped over the lost offset: a skip too
    assert summary[["anomaly", "count", "status", "shown"]].values.tolist() == [["lost-write", 1, "FAIL", 1],
                                                                                ["poll-skip", 1, "FAIL", 1]]
    shown, skip = explore.anomaly_contexts(runs, window=16, max_anomalies=10, zoom_s=2)
    assert "consumer-0 read p0@46 right after offset 44" in skip.title
    table = shown.table
    assert table["offset"].tolist() == list(range(29, 62))  # the partition's operations, in order
    at = table[table["at"] == "▶"].iloc[0]
    assert (at["offset"], at["f"], at["anomalies"]) == (45, "send", "lost-write")
    assert (table["anomalies"] != "").sum() == 1
    faults = table.set_index("offset")["fault"]  # sent at 1 s + offset / 10, the fault from 4 s to 6 s
    kill = "broker-kill (broker-1)"
    assert (faults[29], faults[30], faults[45], faults[50], faults[51]) == ("", kill, kill, kill, "")
    assert at["broker"] == PROXY and at["connections"] == "1 opened, 0 closed"
    assert "during broker-kill (broker-1), 1.50 s after it started" in shown.title
    assert f"{PROXY}, the only broker in producer-0's metadata" in shown.title
    assert isinstance(shown.figure, Figure)
    left, right = shown.figure.axes[0].get_xlim()
    assert left <= 5.5 - 1 <= 5.5 + 1 <= right <= 5.5 + 2.01  # zoomed on the anomaly (first op at t=0.5 s)


def test_the_broker_is_never_guessed():
    assert explore.broker({"brokers": [PROXY]}) == PROXY
    assert explore.broker({"brokers": [PROXY, "1@127.0.0.1:29093"]}).startswith("not recorded: one of ")
    assert explore.broker(None) == "not recorded (no sample)"
    t = Timeline()
    t.client_metrics(2, "consumer-0", 1, [PROXY, "1@127.0.0.1:29093"])
    run = explore.Explored("x", Path("x"), history.View(t.frame()), pd.DataFrame(columns=["check", "status"]))
    assert explore.broker_note(run, "readback", 3 * S, 0).startswith("not recorded: readback was never sampled")
    assert "first client-metrics sample came 1.00 s later" in explore.broker_note(run, "consumer-0", 1 * S, 0)
    assert "does not record which of them led partition 0" in explore.broker_note(run, "consumer-0", 3 * S, 0)


@pytest.mark.parametrize("planter, name", [(plant_inconsistent, "inconsistent-offsets"),
                                           (plant_duplicate, "duplicate")])
def test_anomalies_that_name_slots_are_anchored_at_their_first_operation(tmp_path, planter, name):
    rows, _ = planter(clean_rows(Spec(2, 2, 60, 1), random.Random(7)), 1, random.Random(7))
    runs = _open(tmp_path, rows)
    [shown] = [c for c in explore.anomaly_contexts(runs, window=2, max_anomalies=10) if f". {name} (" in c.title]
    anomaly = next(a for a in explore.select_anomalies(runs, 10) if a.name == name)
    at = shown.table[shown.table["at"] == "▶"].iloc[0]
    assert at["offset"] == anomaly.rows["offset"].iloc[0] and name in at["anomalies"]


def test_the_cap_is_shared_among_classes_and_spread_within_one(tmp_path):
    rows, _ = plant_duplicate(clean_rows(Spec(2, 1, 200, 1), random.Random(3)), 6, random.Random(3))
    rows, _ = plant_corrupted(rows, 2, random.Random(3))
    runs = _open(tmp_path, rows)
    chosen = explore.select_anomalies(runs, 5)
    assert [a.name for a in chosen] == ["duplicate"] * 3 + ["corrupted"] * 2
    found = runs[0].found["duplicate"]  # 6 identities, each at two slots
    picked = [a.rows["ident"].iloc[0] for a in chosen[:3]]
    assert picked[0] == found["ident"].iloc[0] and picked[-1] == found["ident"].iloc[-1]  # first and last
    assert all(len(a.rows) == 2 for a in chosen[:3])
    assert [a.number for a in chosen] == [1, 2, 3, 4, 5]
    assert explore.anomaly_summary(runs, 5).set_index("anomaly")["shown"].to_dict() == {"duplicate": 3,
                                                                                         "corrupted": 2}


def test_a_clean_history_says_no_anomalies_and_keeps_the_recheck_table(tmp_path):
    path = _save(tmp_path / "history-clean.parquet", clean_rows(Spec(2, 2, 40, 1), random.Random(1)), "clean")
    runs = explore.open_histories(history=str(path))
    assert explore.anomaly_summary(runs, 10)["anomaly"].tolist() == [explore.NO_ANOMALIES]
    assert explore.anomaly_contexts(runs) == []
    table = explore.verdict_table(runs)
    _, expected = recheck(path)
    assert table.columns[0] == "history" and (table["history"] == runs[0].label).all()
    pd.testing.assert_frame_equal(table.drop(columns="history"), expected)
    assert explore.histories_table(runs).iloc[0]["anomalies"] == 0


def test_histories_are_found_in_runs_matrix_runs_systems_and_variants(tmp_path, monkeypatch):
    matrix, single = tmp_path / "20261128T000000-aaaa", tmp_path / "20261128T000100-bbbb"
    for name in ("local/S4-broker-chaos/history-kill.parquet", "local/S4-broker-chaos/history-pause.parquet",
                 "kafka/S4-broker-chaos/history-kill#1.parquet", "kafka/S4-broker-chaos/history-kill#2.parquet",
                 "local/S3-correctness/history-overlap.parquet"):
        (matrix / name).parent.mkdir(parents=True, exist_ok=True)
        (matrix / name).touch()
    (single / "S5b-metadata-store").mkdir(parents=True)
    (single / "S5b-metadata-store" / "history-outage.jsonl").touch()
    (tmp_path / "stack").mkdir()  # stack state beside the runs is no run

    def names(**parameters) -> list[str]:
        return [str(p.relative_to(tmp_path)) for p in explore.history_paths(root=tmp_path, **parameters)]

    assert len(names(run_id=matrix.name, scenario="S4")) == 4
    assert names(run_id=matrix.name, scenario="S4", variant="kill", system="kafka") == [
        f"{matrix.name}/kafka/S4-broker-chaos/history-kill#1.parquet",
        f"{matrix.name}/kafka/S4-broker-chaos/history-kill#2.parquet"]
    overlap = names(run_id=matrix.name, variant="overlap")
    assert overlap == [f"{matrix.name}/local/S3-correctness/history-overlap.parquet"]
    monkeypatch.setenv("K6SUITE_OUTPUTS", str(tmp_path))  # the default root, and "" is the newest run
    assert [p.name for p in explore.history_paths(scenario="S5b")] == ["history-outage.jsonl"]
    with pytest.raises(ExploreError, match="no history of S5 in"):
        names(run_id=matrix.name, scenario="S5")
    with pytest.raises(ExploreError, match="has no system 'tansu'; it has: kafka, local"):
        names(run_id=matrix.name, system="tansu")
    with pytest.raises(ExploreError, match="no run nope under"):
        names(run_id="nope")
    with pytest.raises(ExploreError, match="no such history file"):
        explore.history_paths(history=str(tmp_path / "missing.parquet"))


def test_partition_timeline_shades_faults_and_stays_inside_the_history():
    view = history.View(_lost_during_a_fault())
    figure = plots.partition_timeline(view, "t", 0, int(1.2 * S), span_s=3)
    ax = figure.axes[0]
    assert ax.get_xlim() == pytest.approx((0, 3.7), abs=0.01)  # clamped to the first operation (0.5 s)
    assert len(ax.patches) == 1  # the fault window
    assert "acknowledged sends (32)" in [t.get_text() for t in ax.get_legend().get_texts()]


# ----------------------------------------------------------------------------- the notebook on a real run
@pytest.mark.stack
@pytest.mark.timeout(300)
def test_explore_notebook_on_the_history_of_a_real_run(shared_stack, tmp_path):
    """S3's smoke overlap workload on the embedded 3-broker KafScale v1.5.0, a run known to have
    anomalies (every such run acknowledges offsets twice: OBS-04, OBS-11), saved as Scenario.judge
    saves it and explored by the notebook under papermill: the verdict table, and for the anomalies
    their context table and zoomed timeline. A run without anomalies fails here: the notebook's
    anomaly views would go unchecked (and KafScale would have changed, which the observations must say)."""
    import papermill

    from k6suite_lib.runner import _unix_socket_kernels
    from k6suite_lib.scenarios.s3_correctness import TIERS
    from k6suite_lib.workload import WorkloadConfig, run_workload

    _, profile = shared_stack
    tier = TIERS["smoke"]
    config = WorkloadConfig(producers=tier.producers, consumers=tier.consumers, partitions=tier.partitions,
                            records=tier.records, rate=tier.rate, await_consumers_s=30, consume_grace_s=10,
                            readback_timeout_s=30, client_metrics_s=0.5, label="explore")
    result = run_workload(profile, config)
    checks = [CheckSpec("anomalies", AnomalyRules(min_acked=tier.records, max_unacked=0).params()),
              CheckSpec("readback")]
    path = history.save(result.history, tmp_path / "history-overlap.parquet",
                        meta={**result.meta(), "checks": [c.to_json() for c in checks], "scenario": "S3",
                              "variant": "overlap"})
    executed = tmp_path / "explore.ipynb"
    with tempfile.TemporaryDirectory(prefix="k6suite-kernel-") as sockets:
        papermill.execute_notebook("notebooks/explore.ipynb", str(executed), parameters={"history": str(path)},
                                   cwd=".", progress_bar=False, kernel_name="python3", execution_timeout=120,
                                   kernel_manager_class=_unix_socket_kernels(Path(sockets)))

    cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    outputs = {c.source.splitlines()[0]: c.outputs for c in cells}
    verdicts = outputs["explore.verdict_table(runs)"][0]["data"]["text/html"]
    assert "acknowledged sends" in verdicts and "read-back reached the end offsets" in verdicts
    _, table = recheck(path)
    anomalies = [o for o in outputs[next(k for k in outputs if k.startswith("for shown"))] if "data" in o]
    summary = outputs["explore.anomaly_summary(runs, max_anomalies)"][0]["data"]["text/html"]
    found = table[table["check"].isin(explore.ANOMALIES)]
    assert found["measured"].astype(int).sum() > 0, \
        f"KafScale v1.5.0 on three brokers had no anomaly in this run:\n{found.to_string()}"
    assert explore.NO_ANOMALIES not in summary and "FAIL" in summary
    titles = [o["data"]["text/markdown"] for o in anomalies if "text/markdown" in o["data"]]
    tables = [o["data"]["text/html"] for o in anomalies if "text/html" in o["data"]]
    images = [o["data"]["image/png"] for o in anomalies if "image/png" in o["data"]]
    assert titles and len(titles) == len(tables) == len(images) <= 10
    assert "▶" in tables[0] and "broker" in tables[0] and "Broker: " in titles[0]
    assert base64.b64decode(images[0]).startswith(b"\x89PNG")
