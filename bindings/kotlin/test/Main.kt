// Checks the generated Kotlin bindings on the JVM (JNA): engine calls, typed exceptions, a
// listener called from Rust threads and a plugin written in Kotlin. Exits 1 on the first failure
// report; prints one line per check.

import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import java.util.concurrent.CountDownLatch
import kotlin.system.exitProcess
import uniffi.chat_ffi.*

var passed = 0
val failures = mutableListOf<String>()

fun check(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (e: Throwable) {
        failures.add(name)
        println("FAIL $name: $e")
    }
}

fun expect(cond: Boolean, what: String) {
    if (!cond) throw AssertionError(what)
}

inline fun <reified E : Throwable> expectThrows(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

val admin = Actor("lms", "LMS", null, Role.ADMIN)
val ada = Actor("ada", "Ada", null, Role.STUDENT)
val bob = Actor("bob", "Bob", null, Role.STUDENT)
val eve = Actor("eve", "Eve", null, Role.STUDENT)

fun msg(course: String, text: String, clientId: String? = null) =
    SendMessage(courseId = course, message = text, clientId = clientId)

/** A fresh in-memory engine with course [id] (named [name]) that ada and bob are enrolled in. */
fun courseWithAdaAndBob(id: String, name: String): ChatEngine {
    val e = ChatEngine.inMemory()
    e.putCourse(admin, id, CourseUpdate(name = name))
    e.enroll(admin, id, "ada", Role.STUDENT)
    e.enroll(admin, id, "bob", Role.STUDENT)
    return e
}

class Recorder : EventListener {
    val events = CopyOnWriteArrayList<Event>()
    val threads = CopyOnWriteArrayList<Long>()
    override fun onEvent(event: Event) {
        events.add(event)
        threads.add(Thread.currentThread().id)
        if (event is Event.NewMessage && event.message.message == "boom") {
            throw IllegalStateException("listener failure (expected)")
        }
    }

    fun await(what: String, pred: (Event) -> Boolean): Event {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5)
        while (System.nanoTime() < deadline) {
            events.firstOrNull(pred)?.let { return it }
            Thread.sleep(10)
        }
        throw AssertionError("no $what event; got $events")
    }
}

class Moderator : MessagePlugin {
    val seen = CopyOnWriteArrayList<Event>()
    val stored = CountDownLatch(1)
    override fun beforeSend(draft: Draft): Verdict = when {
        "spam" in draft.text -> Verdict.Reject("no spam")
        "darn" in draft.text -> Verdict.Rewrite(draft.text.replace("darn", "d**n"))
        draft.text == "crash" -> throw RuntimeException("moderation down")
        else -> Verdict.Accept
    }

    override fun afterEvent(event: Event) {
        seen.add(event)
        if (event is Event.NewMessage) stored.countDown()
    }
}

fun main() {
    val engine = ChatEngine.inMemory()
    engine.putCourse(admin, "c1", CourseUpdate(name = "Kotlin 101"))
    engine.enroll(admin, "c1", "ada", Role.STUDENT)
    engine.enroll(admin, "c1", "bob", Role.INSTRUCTOR)

    check("provisioning") {
        val course = engine.course(ada, "c1")
        expect(course.name == "Kotlin 101" && course.chatEnabled, "course $course")
        expect(course.participants.sorted() == listOf("ada", "bob"), "participants")
        val roles = engine.participants(admin, "c1").associate { it.userId to it.role }
        expect(roles == mapOf("ada" to Role.STUDENT, "bob" to Role.INSTRUCTOR), "roles $roles")
        expectThrows<ChatException.Forbidden> { engine.putCourse(ada, "c2", CourseUpdate()) }
        engine.enroll(admin, "c1", "tmp", Role.STUDENT)
        engine.unenroll(admin, "c1", "tmp")
        expectThrows<ChatException.NotFound> { engine.unenroll(admin, "c1", "tmp") }
    }

    check("send, idempotency, edit, delete") {
        val m = engine.send(ada, msg("c1", "  hello  ", "k1"))
        expect(m.message == "hello" && m.seq == 1UL && m.messageType == MessageType.TEXT, "$m")
        expect(m.createdAt.endsWith("Z"), "RFC 3339 timestamp ${m.createdAt}")
        expect(engine.send(ada, msg("c1", "again", "k1")).id == m.id, "retried send")
        val e = engine.edit(ada, m.id, "hello!")
        expect(e.isEdited && e.changeSeq == 2UL && e.message == "hello!", "$e")
        expectThrows<ChatException.Forbidden> { engine.edit(bob, m.id, "x") }
        val t = engine.delete(bob, m.id) // bob is the course's instructor
        expect(t.isDeleted && t.message == "" && t.deletedAt != null, "$t")
        expect(engine.message(ada, m.id) == t, "tombstone stays")
    }

    check("receipts, unread counts, history pages, changes") {
        val ms = (1..4).map { engine.send(bob, msg("c1", "m$it")) }
        // Ada's own (deleted) message counts as read by her: 4 unread.
        expect(engine.unreadCount(ada, "c1") == 4UL, "unread ${engine.unreadCount(ada, "c1")}")
        val r = engine.markRead(ada, ms[1].id)
        expect(r.userId == "ada" && r.messageId == ms[1].id, "$r")
        expect(engine.unreadCount(ada, "c1") == 2UL, "unread after read")
        val page = engine.history(ada, "c1", HistoryQuery(limit = 2u))
        expect(page.messages.map { it.message } == listOf("m3", "m4"), "page ${page.messages}")
        expect(page.pagination == Pagination(1u, 2u, 5UL, 3UL, true), "${page.pagination}")
        // The edit and the deletion of the first message took seqs 2 and 3.
        expect(ms.map { it.seq } == listOf(4UL, 5UL, 6UL, 7UL), "seqs ${ms.map { it.seq }}")
        val before = engine.history(ada, "c1", HistoryQuery(before = 6UL, limit = 10u))
        expect(before.messages.map { it.seq } == listOf(1UL, 4UL, 5UL), "before ${before.messages.map { it.seq }}")
        expect(page.messages[0].readBy.isEmpty() && before.messages[2].readBy.map { it.userId } == listOf("ada"), "readBy")
        val changes = engine.changesSince(ada, "c1", 2UL)
        expect(changes.map { eventName(it) } == listOf("message-deleted") + List(4) { "new-message" }, "changes ${changes.map { eventName(it) }}")
        expect((changes[0] as Event.MessageDeleted).seq == 3UL, "deletion seq")
    }

    check("typed exceptions") {
        val nf = expectThrows<ChatException.NotFound> { engine.message(ada, "01JD0000000000000000000000") }
        expect(nf.code() == "NOT_FOUND" && nf.httpStatus() == 404.toUShort(), "code ${nf.code()}")
        expectThrows<ChatException.NotEnrolled> { engine.history(eve, "c1", HistoryQuery()) }
        expectThrows<ChatException.Validation> { engine.send(ada, msg("c1", "   ")) }
        expectThrows<ChatException.Validation> { engine.course(admin, "") }
        expectThrows<ChatException.UnsupportedMediaType> {
            engine.send(ada, SendMessage("c1", "", attachment = Attachment("x", "<html>".toByteArray())))
        }
        var limited: ChatException.RateLimited? = null
        for (i in 0 until 20) {
            try { engine.send(eve.copy(id = "lms2", role = Role.ADMIN), msg("c1", "burst $i")) } catch (e: ChatException.RateLimited) { limited = e; break }
        }
        expect(limited != null && limited.retryAfterMs > 0UL, "rate limited $limited")
        expectThrows<ChatException.Validation> { ChatEngine.inMemory(EngineConfig(typingTtlMs = 0UL)) }
    }

    check("files") {
        val png = byteArrayOf(0x89.toByte(), 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A) + ByteArray(24)
        val m = engine.send(ada, SendMessage("c1", "pic", attachment = Attachment("a.png", png)))
        expect(m.messageType == MessageType.IMAGE && m.file?.mimeType == "image/png", "$m")
        val data = engine.file(bob, m.file!!.id)
        expect(data.bytes.contentEquals(png) && data.info == m.file, "file bytes")
        expect(m.file?.durationMs == null, "only audio has a length")
        val media = java.io.File(System.getenv("CHAT_MEDIA_DIR") ?: "chat-core/tests/fixtures/media")
        val voice = engine.send(ada, SendMessage("c1", "", attachment = Attachment("voice.ogg", media.resolve("voice.ogg").readBytes())))
        val ms = voice.file?.durationMs ?: 0UL
        expect(voice.messageType == MessageType.AUDIO && ms in 480UL..560UL, "voice length $ms")
    }

    check("presence and status") {
        expect(engine.setStatus(ada, true).isOnline, "online")
        expect(engine.onlineUsers(bob, "c1").map { it.id } == listOf("ada"), "online users")
        val off = engine.setStatus(ada, false)
        expect(!off.isOnline && off.lastSeen != null, "offline $off")
        expect(engine.user("ada").id == "ada" && engine.upsertUser(ada).name == "Ada", "user")
        engine.typing(ada, "c1", true)
        engine.typing(ada, "c1", false)
    }

    check("listener receives events on Rust threads") {
        val rec = Recorder()
        val conn = engine.connect(bob, rec)
        expect(conn.actor() == bob, "actor")
        conn.join("c1")
        expect(conn.joined() == listOf("c1"), "joined")
        rec.await("online-users") { it is Event.OnlineUsers }
        val other = engine.connect(ada, Recorder())
        other.join("c1")
        rec.await("user-joined") { it is Event.UserJoined && it.user.id == "ada" }
        other.typing("c1", true)
        rec.await("user-typing") { it is Event.UserTyping && it.userId == "ada" && it.isTyping }
        engine.send(ada, msg("c1", "boom")) // the listener throws on this one
        engine.send(ada, msg("c1", "after boom"))
        val got = rec.await("new-message") { it is Event.NewMessage && it.message.message == "after boom" }
        expect((got as Event.NewMessage).message.sender.id == "ada", "sender")
        expect(Thread.currentThread().id !in rec.threads, "delivered on another thread")
        other.disconnect()
        rec.await("user-left") { it is Event.UserLeft && it.user.id == "ada" }
        conn.disconnect()
        val n = rec.events.size
        engine.send(ada, msg("c1", "unseen"))
        Thread.sleep(200)
        expect(rec.events.size == n && conn.isClosed(), "no events after close")
        expectThrows<ChatException.Internal> { conn.join("c1") }
    }

    check("subscribe replays then follows") {
        val rec = Recorder()
        val sub = engine.subscribe(admin, "c1", 0UL, rec)
        expect(sub.courseId() == "c1", "course id")
        rec.await("replayed new-message") { it is Event.NewMessage && it.message.seq == 1UL }
        engine.send(admin, msg("c1", "live"))
        rec.await("live new-message") { it is Event.NewMessage && it.message.message == "live" }
        sub.cancel()
        expect(sub.isClosed(), "closed")
    }

    check("plugin written in Kotlin rejects and rewrites") {
        val mod = Moderator()
        val moderated = ChatEngine.inMemory(null, listOf(mod))
        moderated.putCourse(admin, "c1", CourseUpdate())
        val rej = expectThrows<ChatException.Forbidden> { moderated.send(admin, msg("c1", "spam!")) }
        expect(rej.reason.contains("no spam"), "reason ${rej.reason}")
        expect(moderated.send(admin, msg("c1", "darn")).message == "d**n", "rewrite")
        expectThrows<ChatException.Internal> { moderated.send(admin, msg("c1", "crash")) }
        expect(mod.stored.await(5, TimeUnit.SECONDS), "after_event called")
        expect(mod.seen.none { it is Event.NewMessage && it.message.message.contains("spam") }, "rejected never stored")
        moderated.shutdown()
    }

    check("open on a folder persists; close releases it") {
        val dir = Files.createTempDirectory("chat-kt").toString()
        val a = ChatEngine.open(dir)
        a.putCourse(admin, "c1", CourseUpdate())
        val m = a.send(admin, msg("c1", "durable"))
        a.shutdown()
        a.shutdown()
        expectThrows<ChatException.Internal> { a.send(admin, msg("c1", "closed")) }
        val b = ChatEngine.open(dir)
        expect(b.message(admin, m.id).message == "durable", "reopened")
        b.shutdown()
    }

    check("reactions: toggled, capped, announced and replayed as seq'd changes") {
        val e = courseWithAdaAndBob("r1", "Reactions")
        val m = e.send(ada, msg("r1", "react"))
        val rec = Recorder()
        val conn = e.connect(bob, rec)
        conn.join("r1", null)
        val liked = e.react(bob, m.id, "👍")
        expect(liked.reactions == listOf(Reaction("👍", 1UL, listOf("bob"))), "${liked.reactions}")
        expect(e.react(bob, m.id, "👍").changeSeq == liked.changeSeq, "adding again changes nothing")
        val added = rec.await("reaction-added") { it is Event.ReactionAdded } as Event.ReactionAdded
        expect(added.emoji == "👍" && added.userId == "bob" && added.seq == m.seq + 1UL, "$added")
        e.unreact(bob, m.id, "👍")
        rec.await("reaction-removed") { it is Event.ReactionRemoved }
        expect(e.message(ada, m.id).reactions.isEmpty(), "removed")
        expectThrows<ChatException.Validation> { e.react(bob, m.id, "no") }
        conn.disconnect()
        val late = Recorder()
        val again = e.connect(ada, late)
        again.join("r1", m.seq)
        late.await("replayed reaction-removed") { it is Event.ReactionRemoved }
        val names = late.events.filter { it is Event.ReactionAdded || it is Event.ReactionRemoved }.map { eventName(it) }
        expect(names == listOf("reaction-added", "reaction-removed"), "replayed $names")
        again.disconnect()
        e.shutdown()
    }

    check("moderation: pins, mutes, bans, flags to moderators, the audit log") {
        val e = courseWithAdaAndBob("m1", "Moderated")
        val prof = Actor("prof", "Prof", null, Role.STUDENT)
        e.enroll(admin, "m1", "prof", Role.INSTRUCTOR)
        val m = e.send(bob, msg("m1", "buy cheap watches"))
        val profEvents = Recorder()
        val adaEvents = Recorder()
        val pc = e.connect(prof, profEvents)
        pc.join("m1", null)
        val ac = e.connect(ada, adaEvents)
        ac.join("m1", null)
        expectThrows<ChatException.Forbidden> { e.pin(ada, m.id) }
        val pinned = e.pin(prof, m.id)
        expect(pinned.pinned && pinned.pinnedBy == "prof", "pinned $pinned")
        val pe = adaEvents.await("message-pinned") { it is Event.MessagePinned } as Event.MessagePinned
        expect(pe.pin.pinned && pe.pin.seq == m.seq + 1UL, "${pe.pin}")
        expect(e.pinned(ada, "m1").map { it.id } == listOf(m.id), "pinned list")
        val r = e.mute(prof, "m1", "bob", 60UL)
        expect(r.mutedUntil != null && !r.banned, "$r")
        expectThrows<ChatException.Muted> { e.send(bob, msg("m1", "hello?")) }
        e.unmute(prof, "m1", "bob")
        e.send(bob, msg("m1", "back"))
        e.ban(prof, "m1", "bob")
        expectThrows<ChatException.Banned> { e.history(bob, "m1", HistoryQuery()) }
        e.unban(admin, "m1", "bob")
        val flag = e.flag(ada, m.id, "spam")
        val fe = profEvents.await("message-flagged") { it is Event.MessageFlagged } as Event.MessageFlagged
        expect(fe.flag == flag, "the flag reached the instructor")
        Thread.sleep(200)
        expect(adaEvents.events.none { it is Event.MessageFlagged }, "not to students")
        val done = e.resolveFlag(prof, flag.id, true)
        expect(done.resolved && done.messageDeleted, "$done")
        expect(e.flags(prof, "m1", true).isEmpty(), "queue emptied")
        val actions = e.auditLog(admin, "m1", null, 50u).map { it.action }
        expect(actions.first() == "resolve-flag" && actions.last() == "pin", "audit $actions")
        pc.disconnect()
        ac.disconnect()
        e.shutdown()
    }

    check("threads, search, mentions, archiving") {
        val e = courseWithAdaAndBob("t1", "Threads")
        val root = e.send(ada, msg("t1", "how do lifetimes work?"))
        val reply = e.send(bob, SendMessage(courseId = "t1", message = "ask @ada", threadId = root.id))
        expect(reply.threadId == root.id && reply.mentions == listOf("ada"), "$reply")
        val page = e.thread(bob, root.id, null, null)
        expect(page.root.replyCount == 1UL && page.replies.map { it.id } == listOf(reply.id), "$page")
        val hits = e.search(ada, "t1", "lifetimes", null, null)
        expect(hits.map { it.message.id } == listOf(root.id), "hits $hits")
        expect(hits[0].highlight.startsWith("how do <b>lifetimes</b> work"), hits[0].highlight)
        val archived = e.putCourse(admin, "t1", CourseUpdate(archived = true))
        expect(archived.archived, "archived")
        expectThrows<ChatException.ChatDisabled> { e.send(ada, msg("t1", "late")) }
        expect(e.exportPage(admin, "t1", 0UL, 10u).size == 2, "export")
        expect(e.dropCourse(admin, "t1") == 2UL, "dropped")
        expectThrows<ChatException.NotFound> { e.history(ada, "t1", HistoryQuery()) }
        e.shutdown()
    }

    engine.shutdown()
    println("kotlin: $passed passed, ${failures.size} failed")
    exitProcess(if (failures.isEmpty()) 0 else 1)
}
