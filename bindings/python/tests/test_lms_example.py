"""The LMS example of examples/python-lms-plugin runs: plugins moderate, the API serves."""

import json
import pathlib
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "python-lms-plugin"
sys.path.insert(0, str(EXAMPLE))
import lms_app  # noqa: E402


@pytest.fixture
def server(tmp_path):
    app = lms_app.LmsChat(str(tmp_path / "chat"))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), lms_app.make_handler(app))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", app
    srv.shutdown()
    srv.server_close()
    app.close()


def call(base, method, path, user, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"X-User": user})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_lms_example_end_to_end(server):
    base, app = server
    status, body = call(base, "POST", "/courses/rust-101/messages", "ada", {"message": "well, darn it"})
    assert status == 201 and body["data"]["message"] == "well, **** it"
    assert body["data"]["sender"]["name"] == "Ada Lovelace" and body["data"]["messageType"] == "text"

    status, body = call(base, "POST", "/courses/rust-101/messages", "alan", {"message": "see https://spam"})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    assert "links" in body["message"]
    status, _ = call(base, "POST", "/courses/rust-101/messages", "grace", {"message": "read https://doc.rust-lang.org"})
    assert status == 201  # instructors may post links

    status, body = call(base, "GET", "/courses/rust-101/messages", "alan")
    assert status == 200
    assert [m["message"] for m in body["data"]["messages"]] == ["well, **** it", "read https://doc.rust-lang.org"]
    assert body["data"]["pagination"]["total"] == 2

    assert call(base, "GET", "/courses/rust-101/unread", "alan")[1]["data"] == {"unread": 2}
    assert call(base, "GET", "/courses/rust-101/unread", "ada")[1]["data"] == {"unread": 1}
    assert call(base, "GET", "/courses/nope/messages", "ada")[0] == 404
    assert call(base, "GET", "/courses/rust-101/messages", "mallory")[0] == 401

    deadline = time.monotonic() + 5
    while len(app.notifications.feed("alan")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    status, body = call(base, "GET", "/notifications", "alan")
    assert body["data"] == [
        "Ada Lovelace in Rust 101: well, **** it",
        "Grace Hopper in Rust 101: read https://doc.rust-lang.org",
    ]
