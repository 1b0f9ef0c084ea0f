// Checks the client SDK (ChatClient) from Kotlin against a real chat-host process: an offline send
// delivered once, a server killed (SIGKILL) mid-send and restarted, a restarted client keeping its
// cache and outbox, and a resume after others sent, edited and deleted while it was away. Uses
// check/expect from Main.kt. Run as ClientTestKt with CHAT_HOST_BIN naming the chat-host binary.

import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.Base64
import java.util.concurrent.CopyOnWriteArrayList
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.system.exitProcess
import uniffi.chat_ffi.*

const val SECRET = "kotlin-client-test-secret-of-32-bytes"
val fast = ClientSettings(backoffMinMs = 50uL, backoffMaxMs = 400uL, typingIdleMs = 400uL)
val http: HttpClient = HttpClient.newHttpClient()

fun b64(bytes: ByteArray): String = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)

/** An HS256 token, as an LMS would issue (javax.crypto's HMAC). */
fun jwt(sub: String, role: String = "student"): String {
    val header = b64("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
    val exp = System.currentTimeMillis() / 1000 + 3600
    val claims = b64("""{"sub":"$sub","name":"$sub","role":"$role","exp":$exp}""".toByteArray())
    val mac = Mac.getInstance("HmacSHA256")
    mac.init(SecretKeySpec(SECRET.toByteArray(), "HmacSHA256"))
    return "$header.$claims.${b64(mac.doFinal("$header.$claims".toByteArray()))}"
}

/** A chat-host process on a sled store, restartable on the same port. */
class Host(private val data: String) {
    val port = ServerSocket(0).use { it.localPort }
    private var proc: Process? = null
    val url get() = "ws://127.0.0.1:$port"

    fun start(): Host {
        val pb = ProcessBuilder(System.getenv("CHAT_HOST_BIN") ?: "target/debug/chat-host")
        pb.environment().apply {
            clear()
            put("PATH", System.getenv("PATH") ?: "")
            put("CHAT_ADDR", "127.0.0.1:$port")
            put("CHAT_DATA_DIR", data)
            put("JWT_SECRET", SECRET)
            put("CHAT_RATE_LIMIT", "10000")
            put("RUST_LOG", "warn")
        }
        pb.redirectError(ProcessBuilder.Redirect.DISCARD)
        val p = pb.start()
        val out = p.inputStream.bufferedReader()
        val banner = out.readLine() ?: ""
        expect(banner.contains("listening"), "banner $banner")
        Thread { out.readText() }.apply { isDaemon = true }.start()
        proc = p
        return this
    }

    fun kill9() {
        proc?.destroyForcibly()?.waitFor()
        proc = null
    }

    fun call(method: String, path: String, token: String, body: String? = null): String {
        val req = HttpRequest.newBuilder(URI("http://127.0.0.1:$port/api/v1/chat$path"))
            .header("Authorization", "Bearer $token")
            .header("Content-Type", "application/json")
            .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
            .build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        expect(resp.statusCode() in 200..299, "$method $path: ${resp.statusCode()} ${resp.body()}")
        return resp.body()
    }

    fun course(course: String, vararg users: String) {
        call("PUT", "/courses/$course", jwt("lms", "admin"), """{"name":"$course"}""")
        for (u in users) call("PUT", "/courses/$course/participants/$u", jwt("lms", "admin"), """{"role":"student"}""")
    }

    fun send(token: String, course: String, text: String): String {
        val body = call("POST", "/send", token, """{"courseId":"$course","message":"$text"}""")
        return Regex("\"id\":\"([^\"]+)\"").find(body)!!.groupValues[1]
    }

    /** The texts of the course's history (up to 100), oldest first. */
    fun texts(course: String): List<String> {
        val body = call("GET", "/course/$course?page=1&limit=100", jwt("lms", "admin"))
        return Regex("\"message\":\"([^\"]*)\",\"messageType\"").findAll(body).map { it.groupValues[1] }.toList()
    }
}

class ClientRecorder : ClientListener {
    val events = CopyOnWriteArrayList<ClientEvent>()
    override fun onEvent(event: ClientEvent) { events.add(event) }

    inline fun <reified T : ClientEvent> of(): List<T> = events.filterIsInstance<T>()

    inline fun <reified T : ClientEvent> await(count: Int = 1, seconds: Long = 15): List<T> {
        val deadline = System.currentTimeMillis() + seconds * 1000
        while (System.currentTimeMillis() < deadline) {
            val found = of<T>()
            if (found.size >= count) return found
            Thread.sleep(20)
        }
        throw AssertionError("${of<T>().size} of $count ${T::class.simpleName} in $seconds s: $events")
    }
}

fun connect(host: Host, user: String, cache: String): Pair<ChatClient, ClientRecorder> {
    val rec = ClientRecorder()
    return ChatClient.connect(host.url, jwt(user), cache, rec, fast) to rec
}

fun main() {
    val root = Files.createTempDirectory("chat-client-kotlin").toString()

    check("client: an offline send is delivered once when the server is back") {
        val host = Host("$root/h1")
        host.start().course("c1", "ada")
        host.kill9()
        val (ada, ev) = connect(host, "ada", "$root/h1-ada")
        ev.await<ClientEvent.Connection>()
        ada.join("c1")
        val entry = ada.send("c1", "written offline")
        expect(entry.state is OutboxState.Pending, "pending ${entry.state}")
        expectThrows<ChatException.Offline> { ada.edit("some-id", "needs the server") }
        host.start()
        val sent = ev.await<ClientEvent.SendSent>()
        expect(sent[0].clientId == entry.clientId, "sent $sent")
        expect(ada.outbox(null).isEmpty(), "outbox empty")
        expect(host.texts("c1") == listOf("written offline"), "history ${host.texts("c1")}")
        Thread.sleep(500)
        expect(ev.of<ClientEvent.SendSent>().size == 1, "reported once")
        ada.shutdown()
        host.kill9()
    }

    check("client: a server killed mid-send leaves no duplicate") {
        val host = Host("$root/h2")
        host.start().course("c1", "ada")
        val (ada, ev) = connect(host, "ada", "$root/h2-ada")
        ada.join("c1")
        expect(ada.waitConnected(15000uL), "connected")
        val texts = (0 until 30).map { "m%02d".format(it) }
        texts.forEach { ada.send("c1", it) }
        ev.await<ClientEvent.SendSent>(3)
        host.kill9()
        host.start()
        ev.await<ClientEvent.SendSent>(texts.size)
        expect(ada.outbox(null).isEmpty(), "outbox empty")
        expect(host.texts("c1") == texts, "each once, in order: ${host.texts("c1")}")
        Thread.sleep(500)
        expect(ev.of<ClientEvent.SendSent>().size == texts.size, "reported once each")
        ada.shutdown()
        host.kill9()
    }

    check("client: a restarted client keeps its cache and outbox") {
        val host = Host("$root/h3")
        host.start().course("c1", "ada", "bob")
        val cache = "$root/h3-ada"
        var (ada, ev) = connect(host, "ada", cache)
        ada.join("c1")
        ev.await<ClientEvent.Joined>()
        host.send(jwt("bob"), "c1", "one")
        host.send(jwt("bob"), "c1", "two")
        ev.await<ClientEvent.NewMessage>(2)
        host.kill9()
        val queued = ada.send("c1", "queued")
        ada.shutdown()
        val again = connect(host, "ada", cache)
        ada = again.first
        ev = again.second
        expect(ada.joinedCourses() == listOf("c1"), "joined")
        val page = ada.history("c1", null, 50u)
        expect(page.messages.map { it.message } == listOf("one", "two") && page.complete, "cache $page")
        expect(ada.unread("c1") == 2uL, "unread")
        expect(ada.outbox(null).map { it.clientId } == listOf(queued.clientId), "outbox kept")
        host.start()
        expect(ev.await<ClientEvent.SendSent>()[0].clientId == queued.clientId, "sent")
        expect(host.texts("c1") == listOf("one", "two", "queued"), "history ${host.texts("c1")}")
        ada.shutdown()
        host.kill9()
    }

    check("client: resume after being away shows exactly the missed changes") {
        val host = Host("$root/h4")
        host.start().course("c1", "ada", "bob")
        val cache = "$root/h4-ada"
        val bob = jwt("bob")
        var (ada, ev) = connect(host, "ada", cache)
        ada.join("c1")
        ev.await<ClientEvent.Joined>()
        val ids = listOf("m1", "m2", "m3").map { host.send(bob, "c1", it) }
        ev.await<ClientEvent.NewMessage>(3)
        ada.shutdown()
        host.send(bob, "c1", "m4")
        host.call("PUT", "/edit/${ids[1]}", bob, """{"message":"m2 edited"}""")
        host.call("DELETE", "/delete/${ids[2]}", bob)
        val again = connect(host, "ada", cache)
        ada = again.first
        ev = again.second
        expect(ev.await<ClientEvent.Joined>()[0].recovered, "recovered")
        Thread.sleep(700)
        val changes = ev.events.mapNotNull {
            when (it) {
                is ClientEvent.NewMessage -> "new ${it.message.message}"
                is ClientEvent.MessageEdited -> "edited ${it.message.message}"
                is ClientEvent.MessageDeleted -> "deleted ${it.messageId}"
                else -> null
            }
        }
        expect(changes == listOf("new m4", "edited m2 edited", "deleted ${ids[2]}"), "changes $changes")
        val shown = ada.history("c1", null, 50u).messages.map { it.message to it.isDeleted }
        expect(shown == listOf("m1" to false, "m2 edited" to false, "" to true, "m4" to false), "cache $shown")
        ada.shutdown()
        host.kill9()
    }

    println("kotlin client: $passed passed, ${failures.size} failed")
    exitProcess(if (failures.isEmpty()) 0 else 1)
}
