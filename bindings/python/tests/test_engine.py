"""The chat engine through its Python binding: every exported call, errors, persistence."""

import pathlib
import threading

import pytest

import chat_ffi as cf
from conftest import ADA, ADMIN, BOB, EVE, PNG, PROF, send


# ---- opening and closing ---------------------------------------------------------------------


def test_open_on_a_folder_persists_across_reopen(tmp_path):
    data = str(tmp_path / "chat")
    eng = cf.ChatEngine.open(data)
    eng.put_course(ADMIN, "c1", cf.CourseUpdate(name="Persisted"))
    eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
    first = send(eng, ADA, "survives a restart")
    eng.mark_read(ADMIN, first.id)
    eng.close()

    again = cf.ChatEngine.open(data)
    try:
        page = again.history(ADA, "c1", cf.HistoryQuery())
        assert [m.message for m in page.messages] == ["survives a restart"]
        assert page.messages[0].id == first.id
        assert [r.user_id for r in page.messages[0].read_by] == ["lms"]
        assert again.course(ADA, "c1").name == "Persisted"
    finally:
        again.close()


def test_open_refuses_an_empty_folder_name():
    with pytest.raises(cf.ChatError.Validation):
        cf.ChatEngine.open("  ")


def test_config_limits_apply_and_bad_config_is_refused():
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(max_message_chars=5, rate_limit_burst=2))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
        with pytest.raises(cf.ChatError.Validation):
            send(eng, ADA, "too long")
        send(eng, ADA, "ok")
        send(eng, ADA, "ok 2")
        with pytest.raises(cf.ChatError.RateLimited) as err:
            send(eng, ADA, "ok 3")
        assert err.value.retry_after_ms > 0
        assert err.value.code() == "RATE_LIMITED"
        assert err.value.http_status() == 429
    finally:
        eng.close()
    with pytest.raises(cf.ChatError.Validation):
        cf.ChatEngine.in_memory(cf.EngineConfig(typing_ttl_ms=0))
    with pytest.raises(cf.ChatError.Validation):
        cf.ChatEngine.in_memory(cf.EngineConfig(max_page_limit=0))


def test_close_is_idempotent_and_later_calls_raise():
    eng = cf.ChatEngine.in_memory()
    assert not eng.is_closed()
    eng.close()
    eng.close()
    assert eng.is_closed()
    with pytest.raises(cf.ChatError.Internal) as err:
        eng.upsert_user(ADA)
    assert "closed" in err.value.reason
    assert err.value.code() == "INTERNAL"


# ---- users and presence ------------------------------------------------------------------------


def test_users_and_status(engine, course):
    user = engine.upsert_user(ADA)
    assert (user.id, user.name, user.avatar, user.role) == ("ada", "Ada", ADA.avatar, cf.Role.STUDENT)
    assert user.is_online is False
    assert engine.user("ada") == user
    with pytest.raises(cf.ChatError.NotFound):
        engine.user("nobody")
    with pytest.raises(cf.ChatError.Validation):
        engine.user("")

    online = engine.set_status(ADA, True)
    assert online.is_online is True
    assert [u.id for u in engine.online_users(BOB, course)] == ["ada"]
    offline = engine.set_status(ADA, False)
    assert offline.is_online is False
    assert offline.last_seen is not None and offline.last_seen.endswith("Z")
    assert engine.online_users(BOB, course) == []
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.online_users(EVE, course)


# ---- provisioning ------------------------------------------------------------------------------


def test_provisioning(engine):
    created = engine.put_course(ADMIN, "c9", cf.CourseUpdate())
    assert (created.id, created.name, created.chat_enabled, created.participants) == ("c9", "c9", True, [])
    renamed = engine.put_course(ADMIN, "c9", cf.CourseUpdate(name="Algebra", chat_enabled=False))
    assert (renamed.name, renamed.chat_enabled) == ("Algebra", False)

    p = engine.enroll(ADMIN, "c9", "ada", cf.Role.INSTRUCTOR)
    assert (p.user_id, p.role) == ("ada", cf.Role.INSTRUCTOR)
    engine.enroll(ADMIN, "c9", "bob", cf.Role.STUDENT)
    assert sorted((x.user_id, x.role) for x in engine.participants(ADA, "c9")) == [
        ("ada", cf.Role.INSTRUCTOR),
        ("bob", cf.Role.STUDENT),
    ]
    assert sorted(engine.course(BOB, "c9").participants) == ["ada", "bob"]

    engine.unenroll(ADMIN, "c9", "bob")
    with pytest.raises(cf.ChatError.NotEnrolled) as err:
        engine.course(BOB, "c9")
    assert err.value.http_status() == 403
    with pytest.raises(cf.ChatError.NotFound):
        engine.unenroll(ADMIN, "c9", "bob")
    with pytest.raises(cf.ChatError.Forbidden):
        engine.put_course(ADA, "c10", cf.CourseUpdate())
    with pytest.raises(cf.ChatError.Forbidden):
        engine.enroll(ADA, "c9", "eve", cf.Role.STUDENT)
    with pytest.raises(cf.ChatError.NotFound):
        engine.enroll(ADMIN, "nope", "eve", cf.Role.STUDENT)
    with pytest.raises(cf.ChatError.NotFound):
        engine.course(ADMIN, "nope")
    with pytest.raises(cf.ChatError.Validation):
        engine.put_course(ADMIN, "c9", cf.CourseUpdate(name="   "))
    with pytest.raises(cf.ChatError.Validation):
        engine.put_course(ADMIN, "bad\x00id", cf.CourseUpdate())


# ---- messages ----------------------------------------------------------------------------------


def test_send_returns_the_contract_message(engine, course):
    m = send(engine, ADA, "  Hello  ", client_id="k1")
    assert m.message == "Hello"
    assert (m.course_id, m.seq, m.change_seq) == (course, 1, 1)
    assert m.sender == cf.Sender(id="ada", name="Ada", avatar=ADA.avatar, role=cf.Role.STUDENT)
    assert m.message_type == cf.MessageType.TEXT
    assert m.file is None and m.reply_to is None and m.read_by == []
    assert not m.is_edited and m.edited_at is None and not m.is_deleted and m.deleted_at is None
    assert m.client_id == "k1"
    assert m.created_at.endswith("Z") and "T" in m.created_at and m.updated_at == m.created_at
    assert len(m.id) == 26
    # A retried send with the same client id returns the original and creates nothing.
    again = send(engine, ADA, "different text", client_id="k1")
    assert again.id == m.id and again.message == "Hello"
    assert engine.history(ADA, course, cf.HistoryQuery()).pagination.total == 1
    assert engine.message(BOB, m.id) == m


def test_send_rules(engine, course):
    with pytest.raises(cf.ChatError.Validation):
        send(engine, ADA, "   ")
    with pytest.raises(cf.ChatError.NotEnrolled):
        send(engine, EVE, "hi")
    with pytest.raises(cf.ChatError.NotFound) as err:
        send(engine, ADA, "hi", course="nope")
    assert err.value.code() == "NOT_FOUND" and err.value.http_status() == 404
    with pytest.raises(cf.ChatError.Forbidden):
        send(engine, ADA, "hi", message_type=cf.MessageType.SYSTEM)
    system = send(engine, ADMIN, "maintenance tonight", message_type=cf.MessageType.SYSTEM)
    assert system.message_type == cf.MessageType.SYSTEM
    with pytest.raises(cf.ChatError.Validation):
        send(engine, ADA, "x" * 4001)
    engine.put_course(ADMIN, course, cf.CourseUpdate(chat_enabled=False))
    with pytest.raises(cf.ChatError.ChatDisabled) as err:
        send(engine, ADA, "hi")
    assert err.value.code() == "CHAT_DISABLED"


def test_replies(engine, course):
    first = send(engine, ADA, "question?")
    reply = send(engine, BOB, "answer", reply_to=first.id)
    assert reply.reply_to == cf.ReplyPreview(
        id=first.id, sender=first.sender, message="question?", is_deleted=False
    )
    engine.put_course(ADMIN, "c2", cf.CourseUpdate())
    engine.enroll(ADMIN, "c2", "ada", cf.Role.STUDENT)
    with pytest.raises(cf.ChatError.Validation):
        send(engine, ADA, "cross-course", course="c2", reply_to=first.id)


def test_files(engine, course):
    m = send(engine, ADA, "", attachment=cf.Attachment(name="../../etc/pic.png", bytes=PNG))
    assert m.message_type == cf.MessageType.IMAGE
    assert m.file.mime_type == "image/png"
    assert m.file.name == "pic.png"
    assert m.file.size == len(PNG)
    assert m.file.url.endswith(m.file.id)
    data = engine.file(BOB, m.file.id)
    assert data.info == m.file
    assert data.bytes == PNG
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.file(EVE, m.file.id)
    with pytest.raises(cf.ChatError.NotFound):
        engine.file(BOB, "0" * 26)

    assert m.file.duration_ms is None  # only audio has a length

    with pytest.raises(cf.ChatError.UnsupportedMediaType) as err:
        send(engine, ADA, "", attachment=cf.Attachment(name="x.html", bytes=b"<html><script>"))
    assert err.value.http_status() == 415
    with pytest.raises(cf.ChatError.Validation):
        send(engine, ADA, "", message_type=cf.MessageType.AUDIO)


MEDIA = pathlib.Path(__file__).resolve().parents[3] / "chat-core" / "tests" / "fixtures" / "media"


@pytest.mark.parametrize("name, mime", [("voice.webm", "audio/webm"), ("voice.ogg", "audio/ogg"),
                                        ("voice.mp3", "audio/mpeg"), ("voice.wav", "audio/x-wav")])
def test_voice_messages_carry_their_length(engine, course, name, mime):
    m = send(engine, ADA, "", attachment=cf.Attachment(name=name, bytes=(MEDIA / name).read_bytes()))
    assert m.message_type == cf.MessageType.AUDIO
    assert m.file.mime_type == mime
    assert 480 <= m.file.duration_ms <= 560  # 0.5 s of tone, as the fixtures' make.sh records
    assert engine.message(BOB, m.id).file.duration_ms == m.file.duration_ms


def test_file_size_limit():
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(max_file_bytes=16))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        with pytest.raises(cf.ChatError.PayloadTooLarge) as err:
            send(eng, ADMIN, "", attachment=cf.Attachment(name="big.png", bytes=PNG))
        assert err.value.limit == 16
        assert err.value.http_status() == 413
    finally:
        eng.close()


def test_edit_and_delete(engine, course):
    m = send(engine, ADA, "frist")
    edited = engine.edit(ADA, m.id, "first")
    assert (edited.message, edited.is_edited, edited.change_seq) == ("first", True, 2)
    assert edited.edited_at is not None
    with pytest.raises(cf.ChatError.Forbidden):
        engine.edit(BOB, m.id, "hijack")
    with pytest.raises(cf.ChatError.Forbidden):
        engine.delete(BOB, m.id)
    with pytest.raises(cf.ChatError.NotFound):
        engine.edit(ADA, "01JD0000000000000000000000", "x")

    tomb = engine.delete(PROF, m.id)  # the course's instructor
    assert (tomb.is_deleted, tomb.message, tomb.file) == (True, "", None)
    assert tomb.deleted_at is not None
    assert engine.delete(ADA, m.id) == tomb  # deleting again returns the tombstone
    with pytest.raises(cf.ChatError.NotFound):
        engine.edit(ADA, m.id, "back from the dead")
    own = send(engine, BOB, "mine")
    assert engine.delete(BOB, own.id).is_deleted


def test_receipts_and_unread_counts(engine, course):
    msgs = [send(engine, ADA, f"m{i}") for i in range(5)]
    assert engine.unread_count(BOB, course) == 5
    assert engine.unread_count(ADA, course) == 0  # the sender has read their own messages
    receipt = engine.mark_read(BOB, msgs[2].id)
    assert (receipt.message_id, receipt.course_id, receipt.user_id) == (msgs[2].id, course, "bob")
    assert receipt.read_at.endswith("Z")
    assert engine.unread_count(BOB, course) == 2
    assert engine.mark_read(BOB, msgs[2].id) == receipt  # idempotent
    assert engine.mark_read(BOB, msgs[0].id).read_at == receipt.read_at  # below the watermark
    page = engine.history(ADA, course, cf.HistoryQuery())
    assert [[r.user_id for r in m.read_by] for m in page.messages] == [["bob"]] * 3 + [[]] * 2
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.unread_count(EVE, course)
    with pytest.raises(cf.ChatError.NotFound):
        engine.mark_read(BOB, "01JD0000000000000000000000")


def test_history_pages():
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(rate_limit_burst=100))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
        for i in range(1, 26):
            send(eng, ADA, f"m{i}")
        p1 = eng.history(ADA, "c1", cf.HistoryQuery(limit=10))
        assert [m.message for m in p1.messages] == [f"m{i}" for i in range(16, 26)]
        assert p1.pagination == cf.Pagination(page=1, limit=10, total=25, total_pages=3, has_more=True)
        p3 = eng.history(ADA, "c1", cf.HistoryQuery(page=3, limit=10))
        assert [m.message for m in p3.messages] == [f"m{i}" for i in range(1, 6)]
        assert p3.pagination.has_more is False
        before = eng.history(ADA, "c1", cf.HistoryQuery(before=6, limit=3))
        assert [m.seq for m in before.messages] == [3, 4, 5]
        after = eng.history(ADA, "c1", cf.HistoryQuery(after=22, limit=10))
        assert [m.seq for m in after.messages] == [23, 24, 25] and not after.pagination.has_more
        default = eng.history(ADA, "c1", cf.HistoryQuery())
        assert default.pagination.limit == 50 and len(default.messages) == 25
        assert eng.history(ADA, "c1", cf.HistoryQuery(limit=1000)).pagination.limit == 100
        with pytest.raises(cf.ChatError.Validation):
            eng.history(ADA, "c1", cf.HistoryQuery(page=0))
        with pytest.raises(cf.ChatError.Validation):
            eng.history(ADA, "c1", cf.HistoryQuery(limit=0))
        with pytest.raises(cf.ChatError.NotEnrolled):
            eng.history(EVE, "c1", cf.HistoryQuery())
    finally:
        eng.close()


def test_changes_since(engine, course):
    a = send(engine, ADA, "a")
    b = send(engine, ADA, "b")
    engine.edit(ADA, a.id, "a2")
    engine.delete(ADA, b.id)
    changes = engine.changes_since(BOB, course, 1)
    assert [cf.event_name(e) for e in changes] == ["new-message", "message-edited", "message-deleted"]
    assert changes[0].message.id == b.id
    assert changes[1].message.message == "a2"
    assert (changes[2].message_id, changes[2].seq) == (b.id, 4)
    assert len(engine.changes_since(BOB, course, 0, limit=2)) == 2
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.changes_since(EVE, course, 0)


def test_engine_typing_validates(engine, course):
    engine.typing(ADA, course, True)
    engine.typing(ADA, course, False)
    with pytest.raises(cf.ChatError.NotEnrolled):
        engine.typing(EVE, course, True)
    engine.put_course(ADMIN, course, cf.CourseUpdate(chat_enabled=False))
    with pytest.raises(cf.ChatError.ChatDisabled):
        engine.typing(ADA, course, True)


def test_bad_input_never_crashes(engine, course):
    """Odd strings and numbers come back as typed errors, never as a crash."""
    for bad in ["", "\x00", "x" * 129, "\n"]:
        with pytest.raises(cf.ChatError.Validation):
            engine.course(ADMIN, bad)
        with pytest.raises((cf.ChatError.Validation, cf.ChatError.NotFound)):
            engine.message(ADMIN, bad)
        with pytest.raises((cf.ChatError.Validation, cf.ChatError.NotFound)):
            engine.file(ADMIN, bad)
    weird = cf.Actor(id="", name="", avatar=None, role=cf.Role.ADMIN)
    with pytest.raises(cf.ChatError.Validation):
        engine.upsert_user(weird)
    page = engine.history(ADA, course, cf.HistoryQuery(page=2**32 - 1, before=2**64 - 1))
    assert page.messages == []
    assert engine.changes_since(ADA, course, 2**64 - 1, limit=2**32 - 1) == []


def test_calls_from_many_threads():
    eng = cf.ChatEngine.in_memory(cf.EngineConfig(rate_limit_burst=1000))
    try:
        eng.put_course(ADMIN, "c1", cf.CourseUpdate())
        errors = []

        def worker(n):
            try:
                for i in range(20):
                    send(eng, ADMIN, f"t{n}-{i}")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        page = eng.history(ADMIN, "c1", cf.HistoryQuery(limit=100))
        assert [m.seq for m in page.messages] == list(range(1, 81))
    finally:
        eng.close()


def test_error_codes_are_the_contract_codes():
    cases = {
        cf.ChatError.Validation(reason="r"): ("VALIDATION", 400),
        cf.ChatError.Unauthorized(reason="r"): ("UNAUTHORIZED", 401),
        cf.ChatError.Forbidden(reason="r"): ("FORBIDDEN", 403),
        cf.ChatError.NotEnrolled(reason="r"): ("NOT_ENROLLED", 403),
        cf.ChatError.ChatDisabled(reason="r"): ("CHAT_DISABLED", 403),
        cf.ChatError.Muted(reason="r"): ("MUTED", 403),
        cf.ChatError.Banned(reason="r"): ("BANNED", 403),
        cf.ChatError.NotFound(reason="r"): ("NOT_FOUND", 404),
        cf.ChatError.PayloadTooLarge(reason="r", limit=1): ("PAYLOAD_TOO_LARGE", 413),
        cf.ChatError.UnsupportedMediaType(reason="r"): ("UNSUPPORTED_MEDIA_TYPE", 415),
        cf.ChatError.RateLimited(reason="r", retry_after_ms=5): ("RATE_LIMITED", 429),
        cf.ChatError.Internal(reason="r"): ("INTERNAL", 500),
    }
    for err, expected in cases.items():
        assert isinstance(err, cf.ChatError) and isinstance(err, Exception)
        assert (err.code(), err.http_status()) == expected


def test_the_word_filter_masks_or_refuses_blocked_words():
    masking = cf.ChatEngine.in_memory(cf.EngineConfig(blocked_words=["darn"]))
    refusing = cf.ChatEngine.in_memory(cf.EngineConfig(blocked_words=["darn"], reject_blocked_words=True))
    try:
        for eng in (masking, refusing):
            eng.put_course(ADMIN, "c1", cf.CourseUpdate(name="x"))
            eng.enroll(ADMIN, "c1", "ada", cf.Role.STUDENT)
        assert send(masking, ADA, "Darn it").message == "**** it"
        with pytest.raises(cf.ChatError.Forbidden):
            send(refusing, ADA, "darn")
        assert send(refusing, ADA, "darning").message == "darning"
        with pytest.raises(cf.ChatError.Validation):
            cf.ChatEngine.in_memory(cf.EngineConfig(blocked_words=["two words"]))
    finally:
        masking.close()
        refusing.close()
