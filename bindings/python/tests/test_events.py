"""Listeners (connections, subscriptions) and plugins written in Python."""

import threading
import time

import pytest

import chat_ffi as cf
from conftest import ADA, ADMIN, BOB, EVE, PROF, Recorder, send


def is_new(text):
    return lambda e: e.is_new_message() and e.message.message == text


# ---- connections -------------------------------------------------------------------------------


def test_connection_receives_the_contract_events_on_rust_threads(engine, course):
    ada_events, bob_events = Recorder(), Recorder()
    ada = engine.connect(ADA, ada_events)
    bob = engine.connect(BOB, bob_events)
    assert ada.actor() == ADA and ada.id() != bob.id()
    assert ada.joined() == [] and not ada.is_closed()

    # Online participants: Bob is connected (online) though not in the room yet.
    online = ada.join(course)
    assert [u.id for u in online] == ["ada", "bob"]
    assert ada.joined() == [course]
    first = ada_events.wait_name("online-users")[0]
    assert first.course_id == course and [u.id for u in first.users] == ["ada", "bob"]

    bob.join(course)
    joined = ada_events.wait_name("user-joined")[0]
    assert (joined.course_id, joined.user.id, joined.user.is_online) == (course, "bob", True)
    assert [u.id for u in engine.online_users(ADMIN, course)] == ["ada", "bob"]

    bob.typing(course, True)
    typing = ada_events.wait_name("user-typing")[0]
    assert (typing.course_id, typing.user_id, typing.name, typing.is_typing) == (course, "bob", "Bob", True)

    m = send(engine, BOB, "hello Ada")
    got = ada_events.wait(is_new("hello Ada"))[0]
    assert got.message == m
    # Sending stops the typing indicator.
    ada_events.wait(lambda e: e.is_user_typing() and not e.is_typing)

    engine.edit(BOB, m.id, "hello Ada!")
    edited = ada_events.wait_name("message-edited")[0]
    assert edited.message.message == "hello Ada!" and edited.message.change_seq == 2

    engine.mark_read(ADA, m.id)
    read = bob_events.wait_name("message-read")[0]
    assert (read.message_id, read.course_id, read.user_id) == (m.id, course, "ada")

    engine.delete(BOB, m.id)
    deleted = ada_events.wait_name("message-deleted")[0]
    assert (deleted.message_id, deleted.course_id, deleted.seq) == (m.id, course, 3)

    bob.leave(course)
    left = ada_events.wait_name("user-left")[0]
    assert left.user.id == "bob"
    assert bob.joined() == []

    # Events reached Python on threads other than the test's.
    assert threading.get_ident() not in ada_events.threads
    # The typist never receives their own typing event.
    assert not [e for e in bob_events.named("user-typing") if e.user_id == "bob"]
    ada.close()
    bob.close()


def test_events_arrive_in_seq_order_without_gaps(engine, course):
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(rate_limit_burst=1000))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        rec = Recorder()
        conn = eng.connect(ADMIN, rec)
        conn.join("c1")
        for i in range(50):
            send(eng, ADMIN, f"m{i}")
        rec.wait(is_new("m49"))
        seqs = [e.message.seq for e in rec.named("new-message")]
        assert seqs == list(range(1, 51))
        conn.close()
    finally:
        eng.close()


def test_join_with_since_seq_replays_what_was_missed(engine, course):
    a = send(engine, ADA, "one")
    send(engine, ADA, "two")
    engine.edit(ADA, a.id, "one!")
    rec = Recorder()
    conn = engine.connect(BOB, rec)
    conn.join(course, 1)
    rec.wait_name("message-edited")
    changes = [e for e in rec.events if e.is_new_message() or e.is_message_edited()]
    assert [(cf.event_name(e), e.message.message) for e in changes] == [
        ("new-message", "two"),
        ("message-edited", "one!"),
    ]
    send(engine, ADA, "three")
    rec.wait(is_new("three"))
    conn.close()


def test_connection_counts_for_presence(engine, course):
    rec = Recorder()
    conn = engine.connect(ADA, rec)
    assert engine.user("ada").is_online
    conn.join(course)
    assert [u.id for u in engine.online_users(BOB, course)] == ["ada"]
    conn.close()
    assert conn.is_closed()
    me = engine.user("ada")
    assert not me.is_online and me.last_seen is not None
    assert engine.online_users(BOB, course) == []
    conn.close()  # idempotent
    with pytest.raises(cf.ChatError.Internal):
        conn.join(course)
    with pytest.raises(cf.ChatError.Internal):
        conn.typing(course, True)
    with pytest.raises(cf.ChatError.Internal):
        conn.leave(course)


def test_connection_errors_are_typed(engine, course):
    conn = engine.connect(EVE, Recorder())
    with pytest.raises(cf.ChatError.NotEnrolled):
        conn.join(course)
    with pytest.raises(cf.ChatError.NotFound):
        conn.join("nope")
    with pytest.raises(cf.ChatError.Validation):
        conn.leave("")
    with pytest.raises(cf.ChatError.NotEnrolled):
        conn.typing(course, True)
    conn.close()
    with pytest.raises(cf.ChatError.Validation):
        engine.connect(cf.Actor(id="", name="x", avatar=None, role=cf.Role.STUDENT), Recorder())


def test_typing_expires(course):
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(typing_ttl_ms=200))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
        eng.enroll(ADMIN, "c1", "bob", cf.Role.STUDENT)
        rec = Recorder()
        watcher = eng.connect(BOB, rec)
        watcher.join("c1")
        typist = eng.connect(ADA, Recorder())
        typist.join("c1")
        typist.typing("c1", True)
        rec.wait(lambda e: e.is_user_typing() and e.is_typing)
        stopped = rec.wait(lambda e: e.is_user_typing() and not e.is_typing, timeout=3)[0]
        assert stopped.user_id == "ada"
    finally:
        eng.close()


def test_a_failing_listener_keeps_receiving(engine, course):
    rec = Recorder(fail_on=lambda e: e.is_new_message() and e.message.message == "boom")
    conn = engine.connect(ADA, rec)
    conn.join(course)
    send(engine, BOB, "boom")
    send(engine, BOB, "after")
    rec.wait(is_new("after"))
    conn.close()


def test_a_listener_may_call_the_engine_and_close_its_connection(engine, course):
    replies = []

    class Echo(cf.EventListener):
        def __init__(self):
            self.conn = None

        def on_event(self, event):
            if event.is_new_message() and event.message.sender.id == "bob":
                replies.append(send(engine, ADA, "echo: " + event.message.message))
                self.conn.close()  # from inside the callback: must not deadlock

    echo = Echo()
    echo.conn = engine.connect(ADA, echo)
    echo.conn.join(course)
    send(engine, BOB, "ping")
    deadline = time.monotonic() + 5
    while not echo.conn.is_closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert echo.conn.is_closed()
    assert [r.message for r in replies] == ["echo: ping"]
    send(engine, BOB, "ignored")
    time.sleep(0.2)
    assert len(replies) == 1


def test_no_callback_after_close(engine, course):
    rec = Recorder()
    conn = engine.connect(ADA, rec)
    conn.join(course)
    send(engine, BOB, "before")
    rec.wait(is_new("before"))
    conn.close()
    count = len(rec.events)
    send(engine, BOB, "after close")
    time.sleep(0.3)
    assert len(rec.events) == count


# ---- subscriptions -----------------------------------------------------------------------------


def test_subscribe_follows_a_course_without_presence(engine, course):
    first = send(engine, ADA, "old")
    rec = Recorder()
    sub = engine.subscribe(ADMIN, course, 0, rec)
    assert sub.course_id() == course and not sub.is_closed()
    rec.wait(is_new("old"))
    assert rec.named("new-message")[0].message.id == first.id
    assert engine.online_users(ADMIN, course) == []  # not present
    send(engine, BOB, "live")
    rec.wait(is_new("live"))
    assert rec.named("online-users") == []
    sub.close()
    assert sub.is_closed()
    count = len(rec.events)
    send(engine, BOB, "unseen")
    time.sleep(0.3)
    assert len(rec.events) == count

    live_only = Recorder()
    sub2 = engine.subscribe(BOB, course, None, live_only)
    send(engine, ADA, "newest")
    live_only.wait(is_new("newest"))
    assert [e.message.message for e in live_only.named("new-message")] == ["newest"]
    sub2.close()
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.subscribe(EVE, course, None, Recorder())


def test_engine_close_stops_connections_and_subscriptions():
    eng = cf.ChatEngine.in_memory()
    eng.put_course(ADMIN, "c1", cf.CourseUpdate())
    rec = Recorder()
    conn = eng.connect(ADMIN, rec)
    conn.join("c1")
    sub = eng.subscribe(ADMIN, "c1", None, Recorder())
    eng.close()
    assert conn.is_closed() and sub.is_closed()
    with pytest.raises(cf.ChatError.Internal):
        conn.join("c1")
    conn.close()  # still safe
    sub.close()


# ---- plugins -----------------------------------------------------------------------------------


class Moderator(cf.MessagePlugin):
    """Rejects 'spam', rewrites 'darn' and records every event after it is stored."""

    def __init__(self):
        self.drafts = []
        self.events = []
        self.cond = threading.Condition()

    def before_send(self, draft):
        self.drafts.append(draft)
        if "spam" in draft.text:
            return cf.Verdict.REJECT(reason="no spam, please")
        if "darn" in draft.text:
            return cf.Verdict.REWRITE(text=draft.text.replace("darn", "d**n"))
        if draft.text == "crash":
            raise ValueError("the moderation service is down")
        return cf.Verdict.ACCEPT()

    def after_event(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        if event.is_new_message() and event.message.message == "fail after":
            raise RuntimeError("webhook down")

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(pred(e) for e in self.events):
                left = deadline - time.monotonic()
                assert left > 0, f"plugin saw no matching event: {self.events!r}"
                self.cond.wait(left)


@pytest.fixture
def moderated():
    mod = Moderator()
    eng = cf.ChatEngine.in_memory(None, [mod])
    eng.put_course(ADMIN, "c1", cf.CourseUpdate())
    eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
    yield eng, mod
    eng.close()


def test_plugin_rejects_and_rewrites(moderated):
    eng, mod = moderated
    with pytest.raises(cf.ChatError.Forbidden) as err:
        send(eng, ADA, "buy spam now")
    assert "no spam, please" in err.value.reason
    rewritten = send(eng, ADA, "darn it")
    assert rewritten.message == "d**n it"
    stored = eng.history(ADA, "c1", cf.HistoryQuery()).messages
    assert [m.message for m in stored] == ["d**n it"]  # the rejected one was never stored

    edited = eng.edit(ADA, rewritten.id, "darn again")
    assert edited.message == "d**n again"
    with pytest.raises(cf.ChatError.Forbidden):
        eng.edit(ADA, rewritten.id, "spam edit")

    draft = mod.drafts[-1]
    assert draft.kind == cf.DraftKind.EDIT and draft.message_id == rewritten.id
    assert draft.sender == ADA and draft.course_id == "c1"
    assert draft.message_type == cf.MessageType.TEXT and draft.file_mime_type is None
    assert mod.drafts[0].kind == cf.DraftKind.NEW and mod.drafts[0].message_id is None


def test_a_failing_plugin_fails_closed(moderated):
    eng, _ = moderated
    with pytest.raises(cf.ChatError.Internal):
        send(eng, ADA, "crash")
    assert eng.history(ADA, "c1", cf.HistoryQuery()).messages == []


def test_plugin_sees_every_event_after_it_is_stored(moderated):
    eng, mod = moderated
    m = send(eng, ADA, "fail after")
    send(eng, ADA, "next")
    eng.mark_read(ADMIN, m.id)
    mod.wait(lambda e: e.is_message_read())
    names = [cf.event_name(e) for e in mod.events]
    assert names[:3] == ["new-message", "new-message", "message-read"]
    assert mod.events[1].message.message == "next"  # after a plugin error, delivery goes on


def test_plugins_run_in_order_and_can_be_opened_on_a_folder(tmp_path):
    class Suffix(cf.MessagePlugin):
        def __init__(self, suffix):
            self.suffix = suffix

        def before_send(self, draft):
            return cf.Verdict.REWRITE(text=draft.text + self.suffix)

        def after_event(self, event):
            pass

    eng = cf.ChatEngine.open(str(tmp_path), cf.EngineConfig(), [Suffix("1"), Suffix("2")])
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        assert send(eng, ADMIN, "x").message == "x12"
    finally:
        eng.close()


def test_event_names():
    user = cf.User(id="u", name="U", avatar=None, role=cf.Role.STUDENT, is_online=True, last_seen=None)
    cases = [
        (cf.Event.MESSAGE_DELETED(message_id="m", course_id="c", seq=1), "message-deleted"),
        (cf.Event.USER_JOINED(course_id="c", user=user), "user-joined"),
        (cf.Event.USER_LEFT(course_id="c", user=user), "user-left"),
        (cf.Event.ONLINE_USERS(course_id="c", users=[user]), "online-users"),
        (cf.Event.USER_TYPING(course_id="c", user_id="u", name="U", is_typing=True), "user-typing"),
        (cf.Event.MESSAGE_READ(message_id="m", course_id="c", user_id="u", read_at="t"), "message-read"),
    ]
    for event, name in cases:
        assert cf.event_name(event) == name


def test_a_listener_may_close_the_engine():
    eng = cf.ChatEngine.in_memory()
    eng.put_course(ADMIN, "c1", cf.CourseUpdate())
    done = threading.Event()

    class Closer(cf.EventListener):
        def on_event(self, event):
            if event.is_new_message():
                eng.close()
                done.set()

    conn = eng.connect(ADMIN, Closer())
    conn.join("c1")
    send(eng, ADMIN, "shut it down")
    assert done.wait(5)
    assert eng.is_closed() and conn.is_closed()
    with pytest.raises(cf.ChatError.Internal):
        send(eng, ADMIN, "too late")


def test_reactions_are_events_and_replayed_on_resume(engine, course):
    m = send(engine, ADA, "react to me")
    rec = Recorder()
    conn = engine.connect(BOB, rec)
    conn.join(course)
    liked = engine.react(BOB, m.id, "👍")
    assert [(r.emoji, r.count, r.user_ids) for r in liked.reactions] == [("👍", 1, ["bob"])]
    assert engine.react(BOB, m.id, "👍").change_seq == liked.change_seq  # nothing changes twice
    added = rec.wait_name("reaction-added")[0]
    assert (added.message_id, added.user_id, added.emoji, added.seq) == (m.id, "bob", "👍", m.seq + 1)
    engine.unreact(BOB, m.id, "👍")
    removed = rec.wait_name("reaction-removed")[0]
    assert removed.seq == m.seq + 2
    assert engine.message(ADA, m.id).reactions == []
    conn.close()
    # A connection resuming from the send sees both, in order.
    late = Recorder()
    conn = engine.connect(ADA, late)
    conn.join(course, m.seq)
    late.wait_name("reaction-removed")
    assert [cf.event_name(e) for e in late.events if cf.event_name(e).startswith("reaction-")] == [
        "reaction-added", "reaction-removed"]
    conn.close()
    with pytest.raises(cf.ChatError.Validation):
        engine.react(BOB, m.id, "not an emoji")
    for i in range(20):
        engine.react(ADA, m.id, f":e{i}:")
    with pytest.raises(cf.ChatError.Validation):
        engine.react(ADA, m.id, ":twenty-first:")


def test_moderation_pins_mutes_bans_flags_and_the_audit_log(engine, course):
    m = send(engine, BOB, "buy cheap watches")
    watcher, prof_rec = Recorder(), Recorder()
    conn = engine.connect(ADA, watcher)
    conn.join(course)
    mod = engine.connect(PROF, prof_rec)
    mod.join(course)

    # Pins: moderators only, a seq'd change, listed for readers.
    with pytest.raises(cf.ChatError.Forbidden):
        engine.pin(ADA, m.id)
    pinned = engine.pin(PROF, m.id)
    assert (pinned.pinned, pinned.pinned_by) == (True, "prof")
    ev = watcher.wait_name("message-pinned")[0]
    assert (ev.pin.message_id, ev.pin.pinned, ev.pin.seq) == (m.id, True, m.seq + 1)
    assert [p.id for p in engine.pinned(ADA, course)] == [m.id]
    assert engine.unpin(PROF, m.id).pinned is False
    assert engine.pinned(ADA, course) == []

    # Mutes: MUTED on sends and typing, user-muted to the room, lifted early.
    r = engine.mute(PROF, course, "bob", 60)
    assert r.user_id == "bob" and r.muted_until is not None and not r.banned
    assert watcher.wait_name("user-muted")[0].mute.muted_until == r.muted_until
    with pytest.raises(cf.ChatError.Muted) as refused:
        send(engine, BOB, "hello?")
    assert refused.value.code() == "MUTED" and refused.value.http_status() == 403
    with pytest.raises(cf.ChatError.Muted):
        engine.typing(BOB, course, True)
    with pytest.raises(cf.ChatError.Validation):
        engine.mute(PROF, course, "bob", 0)
    with pytest.raises(cf.ChatError.Forbidden):
        engine.mute(ADA, course, "bob", 60)
    assert [x.user_id for x in engine.restrictions(PROF, course)] == ["bob"]
    engine.unmute(PROF, course, "bob")
    send(engine, BOB, "back")

    # Bans: BANNED on reads and writes until lifted.
    engine.ban(PROF, course, "bob")
    assert watcher.wait_name("user-banned")[0].ban.banned is True
    with pytest.raises(cf.ChatError.Banned):
        engine.history(BOB, course, cf.HistoryQuery())
    engine.unban(ADMIN, course, "bob")
    send(engine, BOB, "thanks")

    # Flags: to moderators only; resolving deletes the message.
    flag = engine.flag(ADA, m.id, "spam")
    assert (flag.reporter_id, flag.reason, flag.resolved) == ("ada", "spam", False)
    assert prof_rec.wait_name("message-flagged")[0].flag == flag
    time.sleep(0.2)
    assert watcher.named("message-flagged") == []
    assert engine.flags(PROF, course, True) == [flag]
    with pytest.raises(cf.ChatError.Forbidden):
        engine.flags(ADA, course, True)
    done = engine.resolve_flag(PROF, flag.id, True)
    assert done.resolved and done.message_deleted and done.resolved_by == "prof"
    assert engine.message(ADA, m.id).is_deleted
    assert engine.flags(PROF, course, True) == []

    # The audit log, newest first, admins only.
    with pytest.raises(cf.ChatError.Forbidden):
        engine.audit_log(PROF, course, None, 50)
    actions = [e.action for e in engine.audit_log(ADMIN, course, None, 50)]
    assert actions == ["resolve-flag", "delete-message", "unban", "ban", "unmute", "mute", "unpin", "pin"]
    conn.close()
    mod.close()


def test_threads_gather_replies_with_counts_and_an_event(engine, course):
    root = send(engine, ADA, "question")
    rec = Recorder()
    conn = engine.connect(BOB, rec)
    conn.join(course)
    first = send(engine, BOB, "answer", thread_id=root.id)
    assert first.thread_id == root.id
    ev = rec.wait_name("thread-updated")[0]
    assert (ev.thread.thread_id, ev.thread.reply_count, ev.thread.last_reply_id) == (root.id, 1, first.id)
    second = send(engine, ADA, "thanks", thread_id=first.id)  # naming a reply: the same thread
    assert second.thread_id == root.id
    page = engine.thread(BOB, root.id, None, 1)
    assert page.root.reply_count == 2 and page.root.last_reply_at == second.created_at
    assert [m.id for m in page.replies] == [first.id] and page.has_more
    rest = engine.thread(BOB, root.id, first.seq, None)
    assert [m.id for m in rest.replies] == [second.id] and not rest.has_more
    with pytest.raises(cf.ChatError.Validation):
        send(engine, BOB, "x", thread_id="nope")
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.thread(EVE, root.id, None, None)
    conn.close()


def test_search_ranks_highlights_and_follows_edits(engine, course):
    a = send(engine, ADA, "the borrow checker again")
    b = send(engine, BOB, "borrow borrow borrow")
    send(engine, BOB, "nothing to see")
    hits = engine.search(ADA, course, "borrow", None, None)
    assert [h.message.id for h in hits] == [b.id, a.id]
    assert hits[0].score >= hits[1].score
    assert hits[1].highlight == "the <b>borrow</b> checker again"
    engine.edit(ADA, a.id, "the compiler again")
    assert [h.message.id for h in engine.search(ADA, course, "borrow", None, None)] == [b.id]
    engine.delete(BOB, b.id)
    assert engine.search(ADA, course, "borrow", None, None) == []
    assert engine.search(BOB, course, "compiler", 1, None)[0].message.id == a.id
    with pytest.raises(cf.ChatError.Validation):
        engine.search(ADA, course, "", None, None)
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.search(EVE, course, "compiler", None, None)


def test_archiving_export_and_drop(engine, course):
    first = send(engine, ADA, "first")
    send(engine, BOB, "second")
    archived = engine.put_course(ADMIN, course, cf.CourseUpdate(archived=True))
    assert archived.archived
    with pytest.raises(cf.ChatError.ChatDisabled):
        send(engine, ADA, "late")
    with pytest.raises(cf.ChatError.ChatDisabled):
        engine.react(BOB, first.id, "👍")
    assert engine.history(ADA, course, cf.HistoryQuery()).pagination.total == 2
    with pytest.raises(cf.ChatError.Forbidden):
        engine.export_page(ADA, course, 0, 10)
    page = engine.export_page(PROF, course, 0, 1)
    assert [m.message for m in page] == ["first"]
    assert [m.message for m in engine.export_page(ADMIN, course, 1, 10)] == ["second"]
    assert engine.export_page(ADMIN, course, 2, 10) == []
    with pytest.raises(cf.ChatError.Forbidden):
        engine.drop_course(PROF, course)
    assert engine.drop_course(ADMIN, course) == 2
    with pytest.raises(cf.ChatError.NotFound):
        engine.history(ADA, course, cf.HistoryQuery())
    assert engine.run_retention() == 0  # no retention period set


def test_retention_setting_is_checked():
    with pytest.raises(cf.ChatError.Validation):
        cf.ChatEngine.in_memory(cf.EngineConfig(retention_days=0))
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(retention_days=30))
    eng.put_course(ADMIN, "c1", cf.CourseUpdate(name="x"))
    eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
    send(eng, ADA, "recent")
    assert eng.run_retention() == 0  # nothing is 30 days old
    eng.close()


def test_mentions_are_recorded(engine, course):
    send(engine, PROF, "hello")  # a display name is known once its user has used the chat
    m = send(engine, ADA, "@bob, @Prof: see ada@example.org")
    assert m.mentions == ["bob", "prof"]
    assert send(engine, ADA, "nobody").mentions == []
    assert engine.edit(ADA, m.id, "just @bob").mentions == ["bob"]


def test_push_subscriptions_are_kept_per_user(engine, course):
    sub = engine.put_push_subscription(ADA, "https://push.example/a", "BKey", "QXV0aA")
    assert (sub.user_id, sub.endpoint) == ("ada", "https://push.example/a")
    engine.put_push_subscription(ADA, "https://push.example/b", "BKey2", "QXV0aA")
    assert [s.endpoint for s in engine.push_subscriptions(ADA)] == [
        "https://push.example/a", "https://push.example/b"]
    assert engine.push_subscriptions(BOB) == []
    with pytest.raises(cf.ChatError.Validation):
        engine.put_push_subscription(ADA, "ftp://nope", "BKey", "QXV0aA")
    engine.remove_push_subscription(ADA, "https://push.example/a")
    assert [s.endpoint for s in engine.push_subscriptions(ADA)] == ["https://push.example/b"]
