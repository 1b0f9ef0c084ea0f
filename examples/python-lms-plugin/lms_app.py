"""A tiny LMS embedding the course-chat engine, with the standard library only.

What it shows:
- the LMS owns courses and enrolments and provisions them into the engine (admin actor);
- a moderation plugin written in Python (``CourseModeration``) rejects messages with links for
  students and rewrites banned words before anything is stored;
- a notification plugin (``after_event``) keeps per-user notification feeds, the way an LMS
  would send e-mails or push notifications;
- a small JSON API on ``http.server`` serves the course chat to the LMS's pages;
- the engine is closed at exit (``atexit``), which stops its background threads.

Run:  pip install bindings/python && python examples/python-lms-plugin/lms_app.py [--port 8099]
Then: curl -H 'X-User: ada' localhost:8099/courses/rust-101/messages
      curl -H 'X-User: ada' -d '{"message": "hello"}' localhost:8099/courses/rust-101/messages

Authentication is out of scope: the ``X-User`` header names a user of the LMS directory below.
"""

from __future__ import annotations

import argparse
import atexit
import json
import re
import threading
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

import chat_ffi as chat

# ---- the LMS's own data ------------------------------------------------------------------------

USERS: Dict[str, chat.Actor] = {
    "ada": chat.Actor(id="ada", name="Ada Lovelace", avatar=None, role=chat.Role.STUDENT),
    "alan": chat.Actor(id="alan", name="Alan Turing", avatar=None, role=chat.Role.STUDENT),
    "grace": chat.Actor(id="grace", name="Grace Hopper", avatar=None, role=chat.Role.INSTRUCTOR),
}
LMS = chat.Actor(id="lms", name="LMS", avatar=None, role=chat.Role.ADMIN)
COURSES = {
    "rust-101": {"name": "Rust 101", "students": ["ada", "alan"], "instructors": ["grace"]},
}

BANNED = re.compile(r"\b(darn|heck)\b", re.IGNORECASE)
LINK = re.compile(r"https?://", re.IGNORECASE)


# ---- plugins -----------------------------------------------------------------------------------


class CourseModeration(chat.MessagePlugin):
    """Runs on an engine thread before a message (or an edit) is stored."""

    def before_send(self, draft: chat.Draft) -> chat.Verdict:
        if LINK.search(draft.text) and draft.sender.role == chat.Role.STUDENT:
            return chat.Verdict.REJECT(reason="students cannot post links in course chat")
        cleaned = BANNED.sub(lambda m: "*" * len(m.group(0)), draft.text)
        if cleaned != draft.text:
            return chat.Verdict.REWRITE(text=cleaned)
        return chat.Verdict.ACCEPT()

    def after_event(self, event: chat.Event) -> None:
        pass


class Notifications(chat.MessagePlugin):
    """Sees every stored event once, in order, off the sender's path: builds notification feeds
    (an LMS would send e-mail or push notifications here)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.feeds: Dict[str, List[str]] = {}

    def before_send(self, draft: chat.Draft) -> chat.Verdict:
        return chat.Verdict.ACCEPT()

    def after_event(self, event: chat.Event) -> None:
        if not event.is_new_message():
            return
        m = event.message
        course = COURSES.get(m.course_id)
        if course is None:
            return
        members = course["students"] + course["instructors"]
        with self.lock:
            for user in members:
                if user != m.sender.id:
                    self.feeds.setdefault(user, []).append(
                        f"{m.sender.name} in {course['name']}: {m.message[:80]}"
                    )

    def feed(self, user_id: str) -> List[str]:
        with self.lock:
            return list(self.feeds.get(user_id, []))


# ---- the app -----------------------------------------------------------------------------------


def to_json(value):
    """Records and enums of the binding as plain JSON values (camelCase keys, like the contract)."""
    if isinstance(value, Enum):
        return value.name.lower()
    if hasattr(value, "__dict__"):
        return {_camel(k): to_json(v) for k, v in vars(value).items() if not k.startswith("_")}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


class LmsChat:
    """The LMS side: an engine with the two plugins, provisioned from the LMS's courses."""

    def __init__(self, data_dir: Optional[str] = None) -> None:
        self.notifications = Notifications()
        plugins = [CourseModeration(), self.notifications]
        if data_dir:
            self.engine = chat.ChatEngine.open(data_dir, None, plugins)
        else:
            self.engine = chat.ChatEngine.in_memory(None, plugins)
        # Stop the engine's threads before the interpreter goes away.
        atexit.register(self.engine.close)
        self.provision()

    def provision(self) -> None:
        for course_id, course in COURSES.items():
            self.engine.put_course(LMS, course_id, chat.CourseUpdate(name=course["name"], chat_enabled=True))
            for user in course["students"]:
                self.engine.enroll(LMS, course_id, user, chat.Role.STUDENT)
            for user in course["instructors"]:
                self.engine.enroll(LMS, course_id, user, chat.Role.INSTRUCTOR)
        for actor in USERS.values():
            self.engine.upsert_user(actor)

    def close(self) -> None:
        self.engine.close()


def make_handler(app: LmsChat):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the console quiet
            pass

        def reply(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def actor(self) -> Optional[chat.Actor]:
            return USERS.get(self.headers.get("X-User", ""))

        def route(self, method: str) -> None:
            actor = self.actor()
            if actor is None:
                return self.reply(401, {"success": False, "code": "UNAUTHORIZED", "message": "unknown X-User"})
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            try:
                if method == "GET" and parts == ["notifications"]:
                    return self.reply(200, {"success": True, "data": app.notifications.feed(actor.id)})
                if len(parts) == 3 and parts[0] == "courses":
                    course = parts[1]
                    if method == "GET" and parts[2] == "messages":
                        page = app.engine.history(actor, course, chat.HistoryQuery(limit=50))
                        return self.reply(200, {"success": True, "data": to_json(page)})
                    if method == "POST" and parts[2] == "messages":
                        length = int(self.headers.get("Content-Length") or 0)
                        body = json.loads(self.rfile.read(length) or b"{}")
                        msg = app.engine.send(
                            actor,
                            chat.SendMessage(
                                course_id=course,
                                message=str(body.get("message", "")),
                                client_id=body.get("clientId"),
                            ),
                        )
                        return self.reply(201, {"success": True, "data": to_json(msg)})
                    if method == "GET" and parts[2] == "unread":
                        count = app.engine.unread_count(actor, course)
                        return self.reply(200, {"success": True, "data": {"unread": count}})
                return self.reply(404, {"success": False, "code": "NOT_FOUND", "message": "no such route"})
            except chat.ChatError as e:
                return self.reply(e.http_status(), {"success": False, "code": e.code(), "message": e.reason})
            except (ValueError, json.JSONDecodeError):
                return self.reply(400, {"success": False, "code": "VALIDATION", "message": "bad JSON"})

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

    return Handler


def serve(port: int, data_dir: Optional[str]) -> None:
    app = LmsChat(data_dir)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app))
    print(f"LMS chat on http://127.0.0.1:{port} (users: {', '.join(USERS)}; course: rust-101)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--data-dir", default=None, help="keep the chat in this folder (default: memory)")
    args = parser.parse_args()
    serve(args.port, args.data_dir)
