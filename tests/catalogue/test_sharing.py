"""Equal parts of different action files are one object after a load, and
each document stays a tree equal to what its file holds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.catalogue import load_catalogue
from proxy.catalogue.sharing import Sharing
from proxy.errors import CatalogueError


def containers(value: Any) -> list[int]:
    """The id of every object and array of `value`, once per place it is reached from."""
    found = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            found.append(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)
    return found


ENVELOPE = {"type": "object", "properties": {"id": {"type": "string"}, "tags": {"type": "array",
                                                                                 "items": {"type": "string"}}}}


def test_equal_parts_of_different_documents_are_one_object() -> None:
    sharing = Sharing()
    a = sharing.share(orjson.loads(orjson.dumps({"request": ENVELOPE, "name": "first"})))
    b = sharing.share(orjson.loads(orjson.dumps({"response": ENVELOPE, "name": "first"})))
    assert a == {"request": ENVELOPE, "name": "first"} and b == {"response": ENVELOPE, "name": "first"}
    assert a["request"] is b["response"]
    assert a["name"] is b["name"]


def test_a_document_never_holds_one_object_twice() -> None:
    sharing = Sharing()
    twice = {"a": {"type": "string"}, "b": {"type": "string"}, "c": [{"type": "string"}, {"type": "string"}]}
    first = sharing.share(orjson.loads(orjson.dumps(twice)))
    second = sharing.share(orjson.loads(orjson.dumps({"x": twice, "y": {"type": "string"}})))
    for document in (first, second):
        ids = containers(document)
        assert len(ids) == len(set(ids)), "an object reached twice within one document"
    assert first == twice and second == {"x": twice, "y": {"type": "string"}}
    assert second["x"] is first  # whole, with its four {"type": "string"}: `y` is a fifth
    # An edit of a deep copy reaches each place once (copy.deepcopy keeps shared objects shared).
    edited = copy.deepcopy(second)
    for node in (edited["x"]["a"], edited["x"]["b"], edited["y"]):
        node["maxLength"] = node.get("maxLength", 0) + 1
    assert [edited["x"]["a"]["maxLength"], edited["x"]["b"]["maxLength"], edited["y"]["maxLength"]] == [1, 1, 1]


def test_values_equal_in_python_but_not_in_json_stay_apart() -> None:
    sharing = Sharing()
    documents = [{"x": 1}, {"x": 1.0}, {"x": True}, {"a": "b"}, ["a", "b"], {"b": 2, "a": 1}, {"a": 1, "b": 2}]
    shared = [sharing.share(orjson.loads(orjson.dumps(d))) for d in documents]
    assert [orjson.dumps(s) for s in shared] == [orjson.dumps(d) for d in documents]
    assert shared[5] is not shared[6]  # same items, other order: another document as written


def test_a_load_shares_the_schemas_of_its_action_files(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    for n in range(3):
        request = {"type": "object", "properties": {"data": ENVELOPE, f"own{n}": {"type": "integer"}}}
        doc = {"action": f"@t:a:n{n}", "versions": {"1": {"request": request, "response": ENVELOPE}}}
        (tmp_path / "actions" / f"a{n}.json").write_text(json.dumps(doc))
    catalogue = load_catalogue(tmp_path)
    versions = [catalogue.actions[f"@t:a:n{n}"].versions[1] for n in range(3)]
    assert versions[0].response_schema is versions[1].response_schema is versions[2].response_schema
    assert versions[0].request_schema["properties"]["data"] is versions[2].request_schema["properties"]["data"]
    assert versions[0].request_schema is not versions[1].request_schema
    assert versions[1].request_schema["properties"]["own1"] == {"type": "integer"}
    assert versions[1].validate_request({"data": {"id": "x"}, "own1": 3}) == ()
    assert versions[1].validate_request({"data": {"id": 3}})


def test_a_document_nested_deeper_than_python_recurses_is_kept_as_it_is() -> None:
    text = b"[" * 1015 + b"]" * 1015  # the decoder takes up to 1,024 levels
    document = Sharing().share(orjson.loads(text))
    depth = 0
    while document:  # == would recurse too
        assert isinstance(document, list) and len(document) == 1
        document, depth = document[0], depth + 1
    assert document == [] and depth == 1014


def test_a_schema_nested_too_deeply_is_a_problem_of_its_file(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    schema = '{"items":' * 300 + "{}" + "}" * 300
    (tmp_path / "actions" / "deep.json").write_text(
        '{"action": "@t:a:deep", "versions": {"1": {"request": ' + schema + ', "response": {}}}}')
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(tmp_path)
    assert "deep.json#/versions/1/request" in str(caught.value) and "nested too deeply" in str(caught.value)


def test_negative_zero_is_not_shared_with_zero() -> None:
    """-0.0 == 0.0, 1 == 1.0 == True: each document still says what its file says."""
    sharing = Sharing()
    sharing.share({"minimum": {"value": 0.0}, "flag": [True], "count": [1]})
    b = sharing.share({"minimum": {"value": -0.0}, "flag": [1], "count": [1.0]})
    assert orjson.dumps(b) == b'{"minimum":{"value":-0.0},"flag":[1],"count":[1.0]}'
