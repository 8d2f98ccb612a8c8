"""`apihub catalogue check`: the table, every warning and error with file and
pointer, the exit status, no secrets needed, and agreement with what the
server's loader accepts or rejects."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.catalogue import load_catalogue
from proxy.errors import CatalogueError
from proxy.run.check import check

from tests.support import ROOT, consumer_manifest, echo_action, provider_manifest, write_catalogue

ATTENDANCE = "@layers:Attendance:getAbsences"


def run_cli(*args: str, env_drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-m", "proxy", "catalogue", "check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def checked(root: Path) -> tuple[int, str]:
    out = io.StringIO()
    return check(root, out), out.getvalue()


@pytest.mark.slow
def test_shipped_catalogue_passes_without_secrets() -> None:
    result = run_cli("catalogue/", env_drop=("ERP_MODELO_SECRET",))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ACTION", "VERSIONS", "STATUS", "ENGINE", "SOURCE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:5]}
    assert rows[ATTENDANCE] == ["1", "ok", "fastjsonschema",
                                f"catalogue/openapi/attendance.yaml#/paths/~1{ATTENDANCE}/post"]
    assert rows["@layers:Calendar:getRelated"] == ["1,2", "ok", "fastjsonschema",
                                                   "catalogue/actions/calendar-get-related.json"]
    assert "2 app manifest(s) in catalogue/apps" in result.stdout
    assert lines[-1] == "4 action(s), 0 warning(s), 0 error(s): ok"


@pytest.mark.slow
def test_broken_openapi_file_fails_naming_file_and_pointer(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path / "cat", [], [])
    (root / "openapi").mkdir()
    text = (ROOT / "catalogue/openapi/attendance.yaml").read_text()
    text = text.replace("maxLength: 500", "maxLength: lots")
    (root / "openapi" / "attendance.yaml").write_text(text)
    result = run_cli(str(root))
    assert result.returncode == 1
    error = next(line for line in result.stdout.splitlines() if line.startswith("error: "))
    assert error.startswith(f"error: {root}/openapi/attendance.yaml#/components/schemas/Justification/"
                            "properties/note/maxLength: @layers:Attendance:getAbsences: "
                            "not a valid draft-07 schema")
    assert result.stdout.splitlines()[-1].endswith("1 error(s): catalogue rejected")


def test_warnings_errors_and_conflicts_are_all_reported(tmp_path: Path) -> None:
    echo = echo_action("@a:Echo:run")
    broken = {"action": "@a:Broken:run", "versions": {"1": {"request": {"type": "objekt"}, "response": {}}}}
    root = write_catalogue(tmp_path / "cat", [echo, broken], [])
    (root / "openapi").mkdir()
    op = {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
            "n": {"type": "int"}}}}}},
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
    }
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
           "paths": {"/@a:Echo:run": {"post": op}, "/@a:Other:run": {"post": op}}}
    (root / "openapi" / "doc.json").write_text(json.dumps(doc))
    (root / "actions" / "not-json.json").write_text("{")

    status, output = checked(root)
    assert status == 1
    openapi = f"{root}/openapi/doc.json"
    assert (f"warning: {openapi}#/paths/~1@a:Other:run/post/requestBody/content/application~1json/schema/"
            "properties/n/type: @a:Other:run: type 'int' is not a JSON type: read as 'integer'") in output
    assert f"error: {root}/actions/not-json.json: not valid JSON" in output
    assert f"error: {root}/actions/a-broken-run.json#/versions/1/request/type: @a:Broken:run v1 request" in output
    duplicate = next(line for line in output.splitlines() if "defined twice" in line)
    assert f"{root}/actions/a-echo-run.json" in duplicate and f"{openapi}#/paths/~1@a:Echo:run/post" in duplicate
    rows = {line.split()[0]: line.split()[2] for line in output.splitlines()[1:5]}
    assert rows == {"@a:Broken:run": "error", "@a:Echo:run": "error", "@a:Other:run": "ok"}

    # The server's loader rejects the same catalogue (it stops at the first failing stage).
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(root)
    assert {str(p) for p in caught.value.problems} <= {
        line.removeprefix("error: ") for line in output.splitlines() if line.startswith("error: ")}


def test_manifests_checked_without_secrets_and_cross_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_PROVIDER_SECRET", raising=False)
    provider = provider_manifest("prov", "http://127.0.0.1:1/x", secret={"env": "SOME_PROVIDER_SECRET"},
                                 actions={"@a:Echo:run": [1, 3], "@a:Gone:run": [1]})
    consumer = consumer_manifest(consumes=("@a:Echo:run", "@a:Missing:run"))
    root = write_catalogue(tmp_path / "cat", [echo_action("@a:Echo:run")], [provider, consumer])
    status, output = checked(root)
    assert status == 0, output
    assert f"warning: {root}/apps/prov.json#/provides/@a:Echo:run/versions: version(s) 3 of '@a:Echo:run' " \
           "are not in the catalogue" in output
    assert f"warning: {root}/apps/prov.json#/provides/@a:Gone:run: provides '@a:Gone:run'" in output
    assert f"warning: {root}/apps/consumer-app.json#/consumes/1: consumes '@a:Missing:run'" in output

    (root / "apps" / "bad.json").write_text(json.dumps({"id": "bad", "secret": {"env": ""}, "provides": {}}))
    status, output = checked(root)
    assert status == 1
    assert f"error: {root}/apps/bad.json#/secret: must be a string or" in output


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    status, output = checked(tmp_path / "nowhere")
    assert status == 1
    assert f"error: {tmp_path / 'nowhere'}: catalogue folder does not exist" in output


def test_engine_of_each_version_and_every_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    draft2020 = "https://json-schema.org/draft/2020-12/schema"
    closed = {"$schema": draft2020, "type": "object", "allOf": [{"properties": {"data": {}}}],
              "unevaluatedProperties": False}
    lowered = {"$schema": draft2020, "type": "object", "dependentRequired": {"a": ["b"]}}
    mixed = {"action": "@a:Mixed:run", "versions": {
        "1": {"request": lowered, "response": lowered},
        "2": {"request": lowered, "response": closed},
    }}
    root = write_catalogue(tmp_path / "cat", [echo_action("@a:Echo:run"), mixed], [])
    status, output = checked(root)
    assert status == 0, output
    rows = {line.split()[0]: line.split("  ") for line in output.splitlines()[1:3]}
    assert "fastjsonschema" in rows["@a:Echo:run"]
    assert ("v1 fastjsonschema; v2 request: fastjsonschema, response: jsonschema-rs"
            in output.splitlines()[2]), output
    assert (f"warning: {root}/actions/a-mixed-run.json#/versions/2/response: @a:Mixed:run v2 response schema: "
            "fastjsonschema cannot run keyword 'unevaluatedProperties' (at /): validated by jsonschema-rs") in output

    # Without jsonschema-rs installed, the reference engine takes over, and says so.
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)
    status, output = checked(root)
    assert status == 0, output
    assert "v2 request: fastjsonschema, response: jsonschema" in output
    assert "validated by jsonschema\n" in output
