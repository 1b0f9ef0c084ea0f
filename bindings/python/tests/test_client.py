"""The client SDK (ChatClient) against a real chat-host process: an offline send delivered once,
a server killed (SIGKILL) mid-send and restarted, a restarted client keeping its cache and outbox,
and a resume after others sent, edited and deleted while the client was away."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import jwt  # PyJWT: the tokens an LMS would issue
import pytest

import chat_ffi as cf

SECRET = "python-client-test-secret-of-32-bytes"
ROOT = pathlib.Path(__file__).resolve().parents[3]
HOST_BIN = os.environ.get("CHAT_HOST_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "chat-host"
)
FAST = cf.ClientSettings(backoff_min_ms=50, backoff_max_ms=400, typing_idle_ms=400)


def token(sub, role="student"):
    return jwt.encode({"sub": sub, "name": sub.title(), "role": role, "exp": int(time.time()) + 3600},
                      SECRET, algorithm="HS256")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """A chat-host process on a sled store in `data`, restartable on the same port."""

    def __init__(self, data):
        self.data = str(data)
        self.port = free_port()
        self.proc = None

    def start(self):
        env = {"PATH": os.environ.get("PATH", ""), "CHAT_ADDR": f"127.0.0.1:{self.port}",
               "CHAT_DATA_DIR": self.data, "JWT_SECRET": SECRET, "CHAT_RATE_LIMIT": "10000",
               "RUST_LOG": "warn"}
        self.proc = subprocess.Popen([HOST_BIN], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        banner = self.proc.stdout.readline().decode()
        assert "listening" in banner, banner
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self

    def kill9(self):
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def call(self, method, path, tok, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/chat{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {tok}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["data"]

    def course(self, course, users):
        admin = token("lms", "admin")
        self.call("PUT", f"/courses/{course}", admin, {"name": course})
        for u in users:
            self.call("PUT", f"/courses/{course}/participants/{u}", admin, {"role": "student"})

    def history(self, course):
        out, after = [], 0
        while True:
            page = self.call("GET", f"/course/{course}?after={after}&limit=100", token("lms", "admin"))
            if not page["messages"]:
                return out
            out += page["messages"]
            after = page["messages"][-1]["seq"]


class Events(cf.ClientListener):
    """Collects client events delivered on Rust threads."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def on_event(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def of(self, kind):
        with self.cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait(self, kind, count=1, timeout=15.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} {kind.__name__} in {timeout}s: {self.events!r}")
                self.cond.wait(left)


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path / "host").start()
    yield h
    h.kill9()


def connect(host, user, cache):
    events = Events()
    client = cf.ChatClient.connect(host.url, token(user), str(cache), events, FAST)
    return client, events


def test_an_offline_send_is_delivered_once_when_the_server_is_back(host, tmp_path):
    host.course("c1", ["ada"])
    host.kill9()
    ada, events = connect(host, "ada", tmp_path / "ada")
    try:
        events.wait(cf.ClientEvent.CONNECTION)  # it tries, and fails
        ada.join("c1")
        entry = ada.send("c1", "written offline")
        assert isinstance(entry.state, cf.OutboxState.PENDING)
        assert [e.client_id for e in ada.outbox()] == [entry.client_id]
        with pytest.raises(cf.ChatError.Offline):
            ada.edit("some-id", "needs the server")
        host.start()
        sent = events.wait(cf.ClientEvent.SEND_SENT)
        assert sent[0].client_id == entry.client_id
        assert ada.outbox() == []
        history = host.history("c1")
        assert [m["message"] for m in history] == ["written offline"]
        assert history[0]["clientId"] == entry.client_id
        time.sleep(0.5)
        assert len(events.of(cf.ClientEvent.SEND_SENT)) == 1
    finally:
        ada.close()


def test_a_server_killed_mid_send_leaves_no_duplicate(host, tmp_path):
    host.course("c1", ["ada"])
    ada, events = connect(host, "ada", tmp_path / "ada")
    try:
        ada.join("c1")
        assert ada.wait_connected(15000)
        texts = [f"m{i:02}" for i in range(30)]
        for t in texts:
            ada.send("c1", t)
        events.wait(cf.ClientEvent.SEND_SENT, 3)
        host.kill9()
        host.start()
        events.wait(cf.ClientEvent.SEND_SENT, len(texts))
        assert ada.outbox() == []
        assert [m["message"] for m in host.history("c1")] == texts
        time.sleep(0.5)
        assert len(events.of(cf.ClientEvent.SEND_SENT)) == len(texts)
    finally:
        ada.close()


def test_a_restarted_client_keeps_its_cache_and_outbox(host, tmp_path):
    host.course("c1", ["ada", "bob"])
    cache = tmp_path / "ada"
    ada, events = connect(host, "ada", cache)
    ada.join("c1")
    events.wait(cf.ClientEvent.JOINED)
    for t in ["one", "two"]:
        host.call("POST", "/send", token("bob"), {"courseId": "c1", "message": t})
    events.wait(cf.ClientEvent.NEW_MESSAGE, 2)
    host.kill9()
    queued = ada.send("c1", "queued")
    ada.close()

    ada, events = connect(host, "ada", cache)
    try:
        assert ada.joined_courses() == ["c1"]
        page = ada.history("c1", None, 50)
        assert [m.message for m in page.messages] == ["one", "two"]
        assert page.complete
        assert ada.unread("c1") == 2
        assert [e.client_id for e in ada.outbox()] == [queued.client_id]
        host.start()
        assert events.wait(cf.ClientEvent.SEND_SENT)[0].client_id == queued.client_id
        assert [m["message"] for m in host.history("c1")] == ["one", "two", "queued"]
    finally:
        ada.close()


def test_resume_after_being_away_shows_exactly_the_missed_changes(host, tmp_path):
    host.course("c1", ["ada", "bob"])
    cache = tmp_path / "ada"
    bob = token("bob")
    ada, events = connect(host, "ada", cache)
    ada.join("c1")
    events.wait(cf.ClientEvent.JOINED)
    ids = [host.call("POST", "/send", bob, {"courseId": "c1", "message": t})["id"] for t in ["m1", "m2", "m3"]]
    events.wait(cf.ClientEvent.NEW_MESSAGE, 3)
    ada.close()

    host.call("POST", "/send", bob, {"courseId": "c1", "message": "m4"})
    host.call("PUT", f"/edit/{ids[1]}", bob, {"message": "m2 edited"})
    host.call("DELETE", f"/delete/{ids[2]}", bob)

    ada, events = connect(host, "ada", cache)
    try:
        joined = events.wait(cf.ClientEvent.JOINED)[0]
        assert joined.recovered
        time.sleep(0.7)
        changes = []
        for e in events.events:
            if isinstance(e, cf.ClientEvent.NEW_MESSAGE):
                changes.append(("new", e.message.message))
            elif isinstance(e, cf.ClientEvent.MESSAGE_EDITED):
                changes.append(("edited", e.message.message))
            elif isinstance(e, cf.ClientEvent.MESSAGE_DELETED):
                changes.append(("deleted", e.message_id))
        assert changes == [("new", "m4"), ("edited", "m2 edited"), ("deleted", ids[2])]
        page = ada.history("c1", None, 50)
        assert [(m.message, m.is_deleted) for m in page.messages] == [
            ("m1", False), ("m2 edited", False), ("", True), ("m4", False)]
    finally:
        ada.close()


def test_typing_read_and_refusals_reach_python(host, tmp_path):
    host.course("c1", ["ada", "bob"])
    ada, ada_events = connect(host, "ada", tmp_path / "ada")
    bob, bob_events = connect(host, "bob", tmp_path / "bob")
    try:
        for c, ev in [(ada, ada_events), (bob, bob_events)]:
            c.join("c1")
            ev.wait(cf.ClientEvent.JOINED)
        for _ in range(5):
            ada.typing("c1", True)
        typing = bob_events.wait(cf.ClientEvent.TYPING, 2)
        assert [(t.user_id, t.is_typing) for t in typing] == [("ada", True), ("ada", False)]
        bob.send("c1", "read me")
        m = ada_events.wait(cf.ClientEvent.NEW_MESSAGE)[0].message
        assert ada.unread("c1") == 1
        ada.mark_read(m.id)
        assert ada.unread("c1") == 0
        receipt = bob_events.wait(cf.ClientEvent.MESSAGE_READ)[0].receipt
        assert (receipt.user_id, receipt.message_id) == ("ada", m.id)
        liked = ada.react(m.id, "👍")
        assert [(r.emoji, r.user_ids) for r in liked.reactions] == [("👍", ["ada"])]
        heard = bob_events.wait(cf.ClientEvent.REACTION_ADDED)[0]
        assert (heard.message_id, heard.user_id, heard.emoji) == (m.id, "ada", "👍")
        assert [r.emoji for r in bob.message(m.id).reactions] == ["👍"]  # bob's cache follows
        failed = ada.send("c1", "x" * 4001)
        refused = ada_events.wait(cf.ClientEvent.SEND_FAILED)[0].entry
        assert refused.client_id == failed.client_id
        assert refused.state.code == "VALIDATION"
        ada.discard(failed.client_id)
        assert ada.outbox() == []
        with pytest.raises(cf.ChatError.Validation):
            ada.mark_read("not-cached")
    finally:
        ada.close()
        bob.close()
