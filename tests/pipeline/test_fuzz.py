"""Hypothesis-driven bad input against a running hub process, over raw
sockets: random paths, methods, headers, community ids, tokens and bodies,
and bytes that are not HTTP at all. Every answer must be one of docs/contract.md's
documented codes in a problem+json body with its X-Request-Id (or a 200 for
the rare valid call): never a 500, never a hang, never a crash, and nothing
we sent may show up in the hub's log."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults import (
    BODY_MARKER,
    RawAnswer,
    assert_clean_logs,
    parse_answer,
    request_bytes,
    stop_process,
)
from tests.support import (
    COMMUNITY,
    CONSUMER_TOKEN,
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
    start_hub_process,
    wait_ready,
    write_catalogue,
    write_config_file,
)

BAD_TOKEN = "tok-fuzz-unknown-91c3d7"
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


class EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            data = json.loads(raw).get("data")
        except ValueError:
            data = None
        body = json.dumps({"data": {"echo": data}}).encode()  # integers of any size, as the hub carries them
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class FuzzHub:
    port: int
    log: Path

    def send(self, data: bytes, timeout_s: float = 10.0) -> RawAnswer | None:
        """Raw bytes in, the answer out; a hang fails the test (socket timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s) as sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused early (e.g. 413); the answer may still be there
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
        return parse_answer(b"".join(chunks))


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHub]:
    tmp = tmp_path_factory.mktemp("fuzz")
    provider = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=provider.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{provider.server_address[1]}/action"
    root = write_catalogue(tmp / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", url), consumer_manifest()])
    port = free_port()
    config = write_config_file(tmp / "config.toml", root, port,
                               server={"header_timeout_ms": 2000, "body_timeout_ms": 2000})
    log = tmp / "hub.log"
    proc = start_hub_process(config, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        yield FuzzHub(port, log)
        assert proc.poll() is None, "the hub died during the fuzzing"
    finally:
        code = stop_process(proc)
        provider.shutdown()
        provider.server_close()
    assert code == 0
    text = log.read_text()
    assert_clean_logs(text, (BAD_TOKEN,))
    assert '"unhandled_error"' not in text


def check(answer: RawAnswer | None, method: str) -> None:
    assert answer is not None, "the hub closed the connection without an answer"
    assert answer.status != 500
    assert "x-request-id" in answer.headers
    if answer.status == 200:
        return
    if method == "HEAD":  # no body to a HEAD
        assert answer.headers.get("content-type", "").startswith("application/problem+json")
        return
    answer.problem()


# ---- strategies -------------------------------------------------------------

TCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~"
token_chars = st.text(st.sampled_from(TCHAR), min_size=1, max_size=30)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)
segment = st.one_of(
    st.sampled_from([ECHO, "provider-app", "nobody", "@x:y:z", "..", "%00", "%ff%fe", "", "a" * 300]),
    st.text(max_size=40).map(lambda s: urllib.parse.quote(s, safe=":@")),
)
query = st.one_of(
    st.just(""),
    st.builds(lambda v, t: f"?version={urllib.parse.quote(v)}&timeout={t}",
              st.sampled_from(["1", "2", "0", "-1", "99", "abc", "1e3", "", "١"]),
              st.sampled_from(["1", "100", "0", "99999999999", "x", ""])),
    st.text(max_size=30).map(lambda s: "?" + urllib.parse.quote(s, safe="=&")),
)
path = st.one_of(
    st.builds(lambda a, p, q: f"/v1/services/call/{a}/{p}{q}", segment, segment, query),
    st.builds(lambda a, q: f"/v1/services/call/{a}{q}", segment, query),
    st.builds(lambda a, q: f"/v1/services/discover/{a}{q}", segment, query),
    st.sampled_from(["/", "/healthz", "/metrics", "//", "/v1", "/v1/services/call", "*",
                     "http://elsewhere.example/x", "/" + "x" * 3000]),
    segment.map(lambda s: "/" + s),
)
KNOWN_METHODS = ["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]
method = st.one_of(st.sampled_from(KNOWN_METHODS), st.sampled_from(KNOWN_METHODS),
                   st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=10))
authorization = st.sampled_from([
    f"Bearer {CONSUMER_TOKEN}", CONSUMER_TOKEN, f"Bearer {BAD_TOKEN}", BAD_TOKEN, "Bearer ", "",
    "Basic YWxhZGRpbjpvcGVuc2VzYW1l", f"bearer  {CONSUMER_TOKEN}  ", "Bearer " + "t" * 4000,
])
community = st.one_of(st.sampled_from([COMMUNITY, "", " ", "another-school", COMMUNITY.upper()]), header_value)
content_type = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/problem+json", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/",
    "json", "application/json; charset=latin-1",
])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
NASTY_BODIES = [
    b"", b"null", b"[]", b'"text"', b"{", b"}", b"not json", b'{"data": {"value": 1e400}}',
    b'{"data": {"value": 1}, "data": {"value": 2, "label": "dup"}}',
    b'{"data": {"value": 1, "value": -1, "label": "dup"}}',
    b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"data": ' + b'{"x": ' * 10_000 + b"1" + b"}" * 10_001,
    b'{"data": {"value": 1, "label": "' + b"\xff\xfe\xc3\x28" + b'"}}',
    b'\xef\xbb\xbf{"data": {"value": 1, "label": "bom"}}',
    b'{"data": {"value": 1, "label": "x"}} trailing', b'{"data": {"value": NaN, "label": "x"}}',
    b'{"data": {"value": 1, "label": "' + b"s" * 900_000 + b'"}}',
    b'{"data": {"value": 1, "label": "' + b"h" * 1_100_000 + b'"}}',
    b'{"data": {"value": 99999999999999999999999999999, "label": "big"}}',
    b'{"data": {"value": 1, "label": "\\ud800"}}', b"\x00" * 64,
    *(b'{"data": {"value": 1, "label": "x", "deep": ' + b"[" * n + b"]" * n + b"}}" for n in (61, 200, 253, 300, 1023)),
    b'{"data": {"value": 18446744073709551616, "label": "x"}}',
    b'{"data": {"value": -18446744073709551616, "label": "x"}}',
    b'{"data": {"value": 1, "label": "x", "n": 0.12345678901234567890123456789012345}}',
    b'{"data": {"value": 1, "label": "x", "n": 1e-400}}',
    orjson.dumps({"data": {"value": 1, "label": BODY_MARKER}, "secret": "forged", "context": 1}),
]
body = st.one_of(
    st.sampled_from(NASTY_BODIES),
    json_values.map(lambda v: orjson.dumps({"data": v, "note": BODY_MARKER})),
    st.binary(max_size=200),
)


GOOD_PATH = f"/v1/services/call/{ECHO}/provider-app"
MISSING = object()


def mostly(valid: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The valid value most of the time, so examples get past the early checks."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), other)


good_data = st.fixed_dictionaries({"value": st.integers(-5, 2**63 - 1), "label": st.text(max_size=30)},
                                  optional={"extra": json_values})


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    m = draw(mostly("POST", method))
    p = draw(mostly(GOOD_PATH, st.one_of(path, query.map(lambda q: GOOD_PATH + q))))
    headers: list[tuple[str, str]] = []
    for name, valid, other in [
        ("Authorization", f"Bearer {CONSUMER_TOKEN}", authorization),
        ("community-id", COMMUNITY, community),
        ("X-Community-Id", MISSING, community),
        ("Content-Type", "application/json", content_type),
        ("X-Request-Id", MISSING, header_value),
    ]:
        value = draw(mostly(valid, st.one_of(st.just(MISSING), other)))
        if value is not MISSING:
            headers.append((name, value))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(token_chars)
        if name.lower() not in {"content-length", "transfer-encoding", "host", "connection"}:
            headers.append((name, draw(header_value)))
    raw = draw(st.one_of(
        good_data.map(lambda d: orjson.dumps({"data": {**d, "marker": BODY_MARKER}})),
        good_data.map(lambda d: orjson.dumps({"data": d})),
        body,
    ))
    return m, request_bytes(m, p, headers, raw)


# ---- tests ----------------------------------------------------------------

@FUZZ
@given(requests())
def test_random_requests_get_documented_answers(fuzz_hub: FuzzHub, request: tuple[str, bytes]) -> None:
    m, data = request
    check(fuzz_hub.send(data), m)


@pytest.mark.parametrize("raw", NASTY_BODIES, ids=range(len(NASTY_BODIES)))
def test_nasty_bodies_on_a_valid_call(fuzz_hub: FuzzHub, raw: bytes) -> None:
    headers = call_headers()
    answer = fuzz_hub.send(request_bytes("POST", f"/v1/services/call/{ECHO}/provider-app", headers, raw))
    check(answer, "POST")
    assert answer is not None
    if answer.status != 200:
        assert answer.problem()["code"] in {"invalid_json", "invalid_request", "payload_too_large"}


@settings(FUZZ, max_examples=60)
@given(st.binary(min_size=1, max_size=300))
def test_bytes_that_are_not_http(fuzz_hub: FuzzHub, junk: bytes) -> None:
    answer = fuzz_hub.send(junk.replace(b"\r\n\r\n", b"") + b"\r\n\r\n")
    check(answer, "-")
    assert answer is not None and answer.status in {400, 404, 405, 408, 414, 431, 200}


@settings(FUZZ, max_examples=40)
@given(st.lists(st.tuples(token_chars, st.binary(max_size=40)), min_size=1, max_size=5))
def test_raw_header_bytes(fuzz_hub: FuzzHub, fields: list[tuple[str, bytes]]) -> None:
    """Header values with control characters, NULs, invalid UTF-8 and bare CRs."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    for name, value in fields:
        head += name.encode() + b": " + value.replace(b"\r\n", b" ").replace(b"\n", b" ") + b"\r\n"
    check(fuzz_hub.send(head + b"Connection: close\r\n\r\n"), "GET")


number_tokens = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.builds(lambda digits, point: digits[:point] + "." + digits[point:] if 0 < point < len(digits) else digits,
              st.text("0123456789", min_size=1, max_size=40).map(lambda d: d.lstrip("0") or "0"),
              st.integers(0, 40)),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 10**20), st.integers(-500, 500)),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


def nested_body(depth: int, kinds: list[bool], number: str) -> bytes:
    """`data.deep` nested `depth` levels (objects where `kinds` says so) around a number."""
    opening, closing = [], []
    for is_object in (kinds * (depth // max(len(kinds), 1) + 1))[:depth]:
        opening.append(b'{"k": ' if is_object else b"[")
        closing.append(b"}" if is_object else b"]")
    inner = b"".join(opening) + number.encode() + b"".join(reversed(closing))
    return b'{"data": {"value": 1, "label": "x", "deep": ' + inner + b"}}"


@settings(FUZZ, max_examples=80)
@given(st.integers(0, 1100), st.lists(st.booleans(), min_size=1, max_size=4), number_tokens, st.booleans())
def test_depth_and_numbers_never_5xx(fuzz_hub: FuzzHub, depth: int, kinds: list[bool], number: str,
                                     fan_out: bool) -> None:
    """Any depth, any number token, single call and fan-out: a documented 4xx
    for the consumer, and a number that reaches the provider arrives exact."""
    headers = call_headers()
    path = f"/v1/services/call/{ECHO}" + ("" if fan_out else "/provider-app")
    answer = fuzz_hub.send(request_bytes("POST", path, headers, nested_body(depth, kinds, number)))
    check(answer, "POST")
    assert answer is not None
    if answer.status == 400:
        assert answer.problem()["code"] == "invalid_json"
        return
    # The provider echoes `data` one level deeper: past the limit that is its own 502.
    assert answer.status in {200, 502}, answer
    if answer.status == 200 and depth == 0:
        doc = json.loads(answer.body, parse_float=Decimal)
        echoed = doc["results"][0]["data"] if fan_out else doc
        if echoed.get("data", {}).get("echo") is not None:
            assert Decimal(str(echoed["data"]["echo"]["deep"])) == Decimal(number)


def test_the_hub_still_serves_a_valid_call(fuzz_hub: FuzzHub) -> None:
    headers = call_headers()
    body = orjson.dumps({"data": {"value": 1, "label": "ok"}})
    answer = fuzz_hub.send(request_bytes("POST", f"/v1/services/call/{ECHO}/provider-app", headers, body))
    assert answer is not None and answer.status == 200, answer
