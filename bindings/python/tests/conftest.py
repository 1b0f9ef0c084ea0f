import threading
import time

import pytest

import chat_ffi as cf

ADMIN = cf.Actor(id="lms", name="LMS", avatar=None, role=cf.Role.ADMIN)
ADA = cf.Actor(id="ada", name="Ada", avatar="https://example.org/ada.png", role=cf.Role.STUDENT)
BOB = cf.Actor(id="bob", name="Bob", avatar=None, role=cf.Role.STUDENT)
PROF = cf.Actor(id="prof", name="Prof", avatar=None, role=cf.Role.STUDENT)
EVE = cf.Actor(id="eve", name="Eve", avatar=None, role=cf.Role.STUDENT)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32


class Recorder(cf.EventListener):
    """Collects events delivered on Rust threads; wait() polls with a deadline."""

    def __init__(self, fail_on=None):
        self.events = []
        self.threads = set()
        self.fail_on = fail_on
        self.cond = threading.Condition()

    def on_event(self, event):
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.get_ident())
            self.cond.notify_all()
        if self.fail_on is not None and self.fail_on(event):
            raise RuntimeError("listener failure (expected by the test)")

    def named(self, name):
        with self.cond:
            return [e for e in self.events if cf.event_name(e) == name]

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.events if pred(e)]
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event in {timeout}s; got {self.events!r}")
                self.cond.wait(left)

    def wait_name(self, name, timeout=5.0):
        return self.wait(lambda e: cf.event_name(e) == name, timeout)


@pytest.fixture
def engine():
    eng = cf.ChatEngine.in_memory()
    yield eng
    eng.close()


@pytest.fixture
def course(engine):
    """Course c1 with Ada and Bob (students) and Prof (instructor); Eve is not enrolled."""
    engine.put_course(ADMIN, "c1", cf.CourseUpdate(name="Rust 101"))
    engine.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
    engine.enroll(ADMIN, "c1", "bob", cf.Role.STUDENT)
    engine.enroll(ADMIN, "c1", "prof", cf.Role.INSTRUCTOR)
    return "c1"


def send(engine, actor, text, course="c1", **kw):
    return engine.send(actor, cf.SendMessage(course_id=course, message=text, **kw))
