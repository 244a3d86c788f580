"""History files: lossless round trips, documented columns, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k6suite_lib import history
from k6suite_lib.history import COLUMNS, HistoryError, decode_payload, encode_payload
from tests import histories as h


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_save_and_load_round_trip(tmp_path, suffix):
    frame = h.frame(h.clean_rows(h.Spec(2, 2, 30, 2), random.Random(1)))
    frame.loc[0, "detail"] = '{"partitions": [0, 1]}'
    frame.loc[1, "error"] = "KafkaTimeoutError: é"
    path = history.save(frame, tmp_path / f"h{suffix}", meta={"run_id": "r1", "config": {"partitions": 2}})
    loaded, meta = history.load(path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert meta["run_id"] == "r1" and meta["format_version"] == history.FORMAT_VERSION


def test_jsonl_recorded_elsewhere_without_header_loads(tmp_path):
    """Histories from other tools may omit optional columns and the metadata line."""
    path = tmp_path / "foreign.jsonl"
    path.write_text('{"run_id":"x","op_id":0,"process":"p","f":"send","type":"ok","invoke_ns":1,'
                    '"complete_ns":2,"wall_ns":1,"topic":"t","partition":0,"offset":0,"producer":"p","seq":0}\n')
    frame, meta = history.load(path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame.loc[0, "session"] == 0 and frame.loc[0, "intended_ns"] == -1
    assert meta == {}


def test_load_errors(tmp_path):
    with pytest.raises(HistoryError, match="no such history file"):
        history.load(tmp_path / "missing.parquet")
    bad = tmp_path / "h.csv"
    bad.write_text("x")
    with pytest.raises(HistoryError, match=r"\.parquet or \.jsonl"):
        history.load(bad)
    partial = tmp_path / "partial.jsonl"
    partial.write_text('{"run_id":"x","op_id":0}\n')
    with pytest.raises(HistoryError, match="history lacks columns: process, f, type"):
        history.load(partial)
    future = tmp_path / "future.jsonl"
    future.write_text('{"k6suite": {"format_version": 99}}\n')
    with pytest.raises(HistoryError, match="format version 99"):
        history.load(future)


def test_docs_describe_every_column():
    text = Path("docs/history-format.md").read_text()
    for column in COLUMNS:
        assert f"`{column}`" in text, column


@settings(max_examples=200, deadline=None)
@given(producer=st.text(st.characters(blacklist_characters="|", blacklist_categories=["Cs"]), min_size=1,
                        max_size=20), seq=st.integers(0, 10**9), size=st.integers(0, 4096))
def test_payload_identity_round_trip(producer, seq, size):
    value, crc = encode_payload("run-1", producer, seq, size)
    identity = decode_payload(value)
    assert identity == {"producer": producer, "seq": seq, "checksum": crc, "corrupt": False, "run_id": "run-1"}


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_flipped_body_byte_is_detected(position, flip):
    value, _ = encode_payload("run-1", "producer-0", 7, 256)
    head_len = value.rindex(b"|") + 1
    index = head_len + position % (len(value) - head_len)
    damaged = bytearray(value)
    damaged[index] ^= flip
    assert decode_payload(bytes(damaged))["corrupt"]


def test_garbage_payloads_are_corrupt():
    for value in (None, b"", b"hello", b"k6s1|r|p|notanumber|00000000|x"):
        assert decode_payload(value)["corrupt"]
