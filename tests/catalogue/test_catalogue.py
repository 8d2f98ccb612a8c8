"""Loading the catalogue and the file registry: every problem names the file
and the place in it, and a load with any problem is rejected whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.catalogue import SchemaCompiler, load_catalogue
from proxy.errors import CatalogueError
from proxy.config import parse_config
from proxy.web.state import load_snapshot
from proxy.registry import open_registry
from proxy.registry.file import read_apps_folder
from proxy.registry.manifest import ManifestError, parse_manifest

from tests.support import ROOT, consumer_manifest, echo_action, provider_manifest, write_catalogue


def problems(root: Path) -> list[str]:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(root)
    return [str(p) for p in caught.value.problems]


def test_shipped_catalogue_loads() -> None:
    catalogue = load_catalogue(ROOT / "catalogue")
    assert {"@layers:Calendar:getRelated", "@layers:Gradebook:getGrades",
            "@layers:Payables:list"} <= set(catalogue.actions)
    assert sorted(catalogue.actions["@layers:Calendar:getRelated"].versions) == [1, 2]
    apps = read_apps_folder(ROOT / "catalogue" / "apps", environ={"ERP_MODELO_SECRET": "x"})
    assert {"erp-modelo", "grades-viewer"} <= set(apps)


@pytest.mark.parametrize(("doc", "needle"), [
    ({"versions": {"1": {"request": {}, "response": {}}}}, "/action: must be a non-empty string"),
    ({"action": "@a:b:c", "versions": {}}, "/versions: must be a non-empty object"),
    ({"action": "@a:b:c", "versions": {"v1": {"request": {}, "response": {}}}}, "/versions/v1: version keys"),
    ({"action": "@a:b:c", "versions": {"1": {"request": {}}}}, "/versions/1/response: is required"),
    ({"action": "@a:b:c", "versions": {"1": {"request": {}, "response": {}, "enforce": {"request": "lax"}}}},
     "/versions/1/enforce/request: must be 'strict' or 'report'"),
    ({"action": "@a:b:c", "typo": 1, "versions": {"1": {"request": {}, "response": {}}}}, "/typo: unknown key"),
    ({"action": "@a:b:c", "versions": {"1": {"request": {"type": "nope"}, "response": {}}}},
     "/versions/1/request/type"),
])
def test_action_file_problems(tmp_path: Path, doc: dict[str, Any], needle: str) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "x.json").write_text(json.dumps(doc))
    found = problems(tmp_path)
    assert len(found) == 1
    assert "x.json" in found[0] and needle in found[0], found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "a.json").write_text("{")
    (tmp_path / "actions" / "b.json").write_text(json.dumps({"action": "@b"}))
    found = problems(tmp_path)
    assert len(found) == 2
    assert "a.json" in found[0] and "b.json" in found[1]


def test_duplicate_action_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "actions" / "sub").mkdir(parents=True)
    (tmp_path / "actions" / "one.json").write_text(json.dumps(echo_action()))
    (tmp_path / "actions" / "sub" / "two.json").write_text(json.dumps(echo_action()))
    [found] = problems(tmp_path)
    assert "defined twice" in found and "one.json" in found and "two.json" in found


def test_missing_folder(tmp_path: Path) -> None:
    assert "does not exist" in problems(tmp_path / "nope")[0]


def test_compiler_reuses_identical_schemas(tmp_path: Path) -> None:
    write_catalogue(tmp_path, [echo_action("@a:one:x"), echo_action("@a:two:x")], [])
    compiler = SchemaCompiler()
    catalogue = load_catalogue(tmp_path, compiler=compiler)
    one, two = catalogue.actions["@a:one:x"], catalogue.actions["@a:two:x"]
    assert one.versions[1].validate_request is two.versions[1].validate_request
    again = load_catalogue(tmp_path, compiler=compiler)
    assert again.actions["@a:one:x"].versions[1].validate_request is one.versions[1].validate_request


def test_snapshot_rejects_bad_manifest_and_bad_action_together(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path / "c", [echo_action()], [consumer_manifest()])
    (root / "actions" / "bad.json").write_text("[]")
    (root / "apps" / "bad-app.json").write_text(json.dumps({"id": "bad app"}))
    config = parse_config({"catalogue": {"path": str(root)}}, base_dir=tmp_path)
    with pytest.raises(CatalogueError) as caught:
        load_snapshot(config, generation=1, compiler=SchemaCompiler(), registry=open_registry(config),
                      reread=True)
    text = str(caught.value)
    assert "bad.json" in text and "bad-app.json#/id" in text


@pytest.mark.parametrize(("patch", "field"), [
    ({"id": ""}, "/id"),
    ({"tokens": ["plaintext-token"]}, "/tokens/0"),
    ({"tokens": "sha256:abc"}, "/tokens"),
    ({"communities": [1]}, "/communities/0"),
    ({"provides": {"@a": {"url": "ftp://x", "versions": [1]}}}, "/provides/@a/url"),
    ({"provides": {"@a": {"url": "http://x", "versions": [0]}}}, "/provides/@a/versions"),
    ({"provides": {"@a": {"url": "http://x", "versions": [1], "maxConcurrency": -1}}},
     "/provides/@a/maxConcurrency"),
    ({"secret": None}, "/secret"),
    ({"secret": {"env": "APIHUB_TEST_UNSET_VAR"}}, "/secret/env"),
    ({"color": "red"}, "/color"),
])
def test_manifest_problems_name_the_field(patch: dict[str, Any], field: str) -> None:
    doc = provider_manifest("p", "http://127.0.0.1:1/x")
    doc.update(patch)
    if patch.get("secret", "keep") is None:
        del doc["secret"]
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc, environ={})
    assert caught.value.field == field


def test_secret_from_env_and_hidden_repr() -> None:
    doc = provider_manifest("p", "http://127.0.0.1:1/x", secret={"env": "P_SECRET"})
    app = parse_manifest(doc, environ={"P_SECRET": "hunter2-hunter2"})
    assert app.secret is not None and app.secret.value == "hunter2-hunter2"
    assert "hunter2" not in repr(app)


def test_duplicate_token_across_apps(tmp_path: Path) -> None:
    write_catalogue(tmp_path, [], [consumer_manifest("a"), consumer_manifest("b")])
    with pytest.raises(CatalogueError, match="a token is also held by app 'a'"):
        read_apps_folder(tmp_path / "apps")


def test_a_reload_reads_and_builds_only_the_changed_action_file(tmp_path: Path) -> None:
    import os

    write_catalogue(tmp_path, [echo_action("@a:one:x"), echo_action("@a:two:x")], [])
    compiler = SchemaCompiler()
    first = load_catalogue(tmp_path, compiler=compiler)
    changed = tmp_path / "actions" / "a-two-x.json"
    doc = json.loads(changed.read_text())
    changed.write_text(json.dumps({**doc, "title": "Two, edited"}))
    info = changed.stat()
    os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    second = load_catalogue(tmp_path, compiler=compiler)
    assert second.actions["@a:one:x"] is first.actions["@a:one:x"]
    assert second.actions["@a:two:x"].title == "Two, edited"
    (tmp_path / "actions" / "broken.json").write_text("{")
    with pytest.raises(CatalogueError):
        load_catalogue(tmp_path, compiler=compiler)
    (tmp_path / "actions" / "broken.json").unlink()
    third = load_catalogue(tmp_path, compiler=compiler)  # what the rejected load read is not kept
    assert third.actions["@a:one:x"] is first.actions["@a:one:x"]
    assert third.actions["@a:two:x"] is second.actions["@a:two:x"]


def test_action_files_are_what_rglob_finds_in_its_order(tmp_path: Path) -> None:
    from proxy.catalogue.files import action_files

    folder = tmp_path / "actions"
    for name in ("b.json", "a.json", ".hidden.json", "notes.txt", "sub/z.json", "sub/deeper/a.json",
                 "sub-b/a.json", "B.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    (folder / "folder.json").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "linked.json").write_text("{}")
    (folder / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    found = action_files(folder)
    assert found == [str(p) for p in sorted(folder.rglob("*.json"), key=str)]
    assert str(folder / "sub" / "deeper" / "a.json") in found and str(folder / "folder.json") in found


def test_a_reload_keeps_one_stamp_per_unchanged_action_file(tmp_path: Path) -> None:
    """The memo's key of a reused spec is the stamp the spec holds (and its
    file name the spec's source), not the equal one the reload made."""
    write_catalogue(tmp_path, [echo_action("@a:one:x"), echo_action("@a:two:x")], [])
    compiler = SchemaCompiler()
    load_catalogue(tmp_path, compiler=compiler)
    load_catalogue(tmp_path, compiler=compiler)
    kept = compiler.specs._kept
    assert len(kept) == 2
    for stamp, spec in kept.items():
        assert stamp is spec.stamp and stamp[0] is spec.source
