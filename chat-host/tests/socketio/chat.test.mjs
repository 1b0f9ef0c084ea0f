// The contract's events over Socket.IO, driven by the real npm socket.io-client, once with its
// default options (long-polling first, then the upgrade to WebSocket) and once with
// `transports: ["websocket"]`.

import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import {
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  call,
  collect,
  connect,
  course,
  jwt,
  next,
  rest,
  ok,
  sleep,
  token,
  uid,
  until,
} from "./helpers.mjs";

const MODES = [
  { name: "default options (polling, then upgrade)", opts: {}, upgrade: true },
  { name: 'transports: ["websocket"]', opts: { transports: ["websocket"] }, upgrade: false },
];

for (const mode of MODES) {
  describe(`socket.io-client with ${mode.name}`, () => {
    const open = [];
    const sock = async (tok) => {
      const s = await connect(tok, mode.opts);
      open.push(s);
      return s;
    };
    after(() => open.forEach((s) => s.close()));

    /** A course with students a and b (and instructor i), their tokens, and sockets for a and b. */
    async function room() {
      const a = uid("a"), b = uid("b"), i = uid("i");
      const courseId = await course({ [a]: "student", [b]: "student", [i]: "instructor" });
      const ta = token(a, "Ada"), tb = token(b, "Bob"), ti = token(i, "Ines", "instructor");
      const sa = await sock(ta);
      const sb = await sock(tb);
      return { a, b, i, ta, tb, ti, sa, sb, courseId };
    }

    it("connects with the auth token and uses the expected transport", async () => {
      const { sa } = await room();
      assert.ok(sa.connected);
      assert.equal(typeof sa.id, "string");
      const engine = sa.io.engine;
      if (mode.upgrade) {
        assert.equal(engine.transport.name === "polling" || engine.transport.name === "websocket", true);
        await until(() => engine.transport.name === "websocket");
      } else {
        assert.equal(engine.transport.name, "websocket");
      }
    });

    it("join-course acks with the online users and sends online-users", async () => {
      const { sa, sb, a, b, courseId } = await room();
      const onlineA = next(sa, "online-users", (d) => d.courseId === courseId);
      const joined = await ok(sa, "join-course", { courseId });
      assert.equal(joined.courseId, courseId);
      assert.ok(joined.users.some((u) => u.id === a));
      const first = await onlineA;
      assert.ok(first.users.some((u) => u.id === a));
      // b joins: a hears user-joined.
      const heard = next(sa, "user-joined", (d) => d.courseId === courseId && d.user.id === b);
      await ok(sb, "join-course", { courseId });
      const ev = await heard;
      assert.equal(ev.user.name, "Bob");
    });

    it("send-message is acknowledged with the message and reaches the others as new-message", async () => {
      const { sa, sb, a, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const received = next(sb, "new-message", (m) => m.courseId === courseId);
      const clientId = "cid-" + Date.now();
      const sent = await ok(sa, "send-message", { courseId, message: "Hello", clientId });
      assert.equal(sent.message, "Hello");
      assert.equal(sent.sender.id, a);
      assert.equal(sent.clientId, clientId);
      assert.equal(typeof sent.seq, "number");
      const m = await received;
      assert.equal(m.id, sent.id);
      assert.equal(m.message, "Hello");
      // A retried send with the same clientId returns the original.
      const again = await ok(sa, "send-message", { courseId, message: "Hello", clientId });
      assert.equal(again.id, sent.id);
    });

    it("add-reaction / remove-reaction are acked with the message and reach the room as seq'd events", async () => {
      const { sa, sb, a, b, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const sent = await ok(sa, "send-message", { courseId, message: "react" });
      const added = next(sa, "reaction-added", (r) => r.messageId === sent.id);
      const liked = await ok(sb, "add-reaction", { messageId: sent.id, emoji: "👍" });
      assert.deepEqual(liked.reactions, [{ emoji: "👍", count: 1, userIds: [b] }]);
      const ev = await added;
      assert.equal(ev.userId, b);
      assert.equal(ev.emoji, "👍");
      assert.equal(ev.courseId, courseId);
      assert.equal(ev.seq, sent.seq + 1);
      const removed = next(sa, "reaction-removed", (r) => r.messageId === sent.id);
      const unliked = await ok(sb, "remove-reaction", { messageId: sent.id, emoji: "👍" });
      assert.equal(unliked.reactions, undefined);
      assert.equal((await removed).seq, sent.seq + 2);
      const bad = await call(sa, "add-reaction", { messageId: sent.id, emoji: "not one" });
      assert.equal(bad.ok, false);
      assert.equal(bad.error.code, "VALIDATION");
      assert.ok(a);
    });

    it("moderation: pins reach the room, mutes refuse with MUTED, flags reach moderators only", async () => {
      const { sa, sb, b, ti, courseId } = await room();
      const si = await sock(ti);
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      await ok(si, "join-course", { courseId });
      const sent = await ok(sb, "send-message", { courseId, message: "pin me" });
      const pinnedEv = next(sa, "message-pinned", (p) => p.messageId === sent.id);
      const denied = await call(sa, "pin-message", { messageId: sent.id });
      assert.equal(denied.error.code, "FORBIDDEN");
      const pinned = await ok(si, "pin-message", { messageId: sent.id });
      assert.equal(pinned.pinned, true);
      const ev = await pinnedEv;
      assert.equal(ev.pinned, true);
      assert.equal(ev.seq, sent.seq + 1);

      const mutedEv = next(sa, "user-muted", (m) => m.userId === b);
      const r = await ok(si, "mute-user", { courseId, userId: b, durationSeconds: 60 });
      assert.equal(r.userId, b);
      assert.equal((await mutedEv).mutedUntil, r.mutedUntil);
      const refused = await call(sb, "send-message", { courseId, message: "hello?" });
      assert.equal(refused.error.code, "MUTED");
      assert.equal(refused.error.mutedUntil, r.mutedUntil);
      await ok(si, "unmute-user", { courseId, userId: b });
      await ok(sb, "send-message", { courseId, message: "back" });

      const flagged = next(si, "message-flagged", (f) => f.messageId === sent.id);
      let leaked = false;
      sb.on("message-flagged", () => { leaked = true; });
      const flag = await ok(sa, "flag-message", { messageId: sent.id, reason: "spam" });
      assert.deepEqual(await flagged, flag);
      await sleep(200);
      assert.equal(leaked, false, "students do not see flags");
    });

    it("threads: a reply with threadId, thread-updated to the room, get-thread pages", async () => {
      const { a, sa, sb, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const root = await ok(sa, "send-message", { courseId, message: "question" });
      const updated = next(sa, "thread-updated", (t) => t.threadId === root.id);
      const reply = await ok(sb, "send-message", { courseId, message: "answer @" + a, threadId: root.id });
      assert.equal(reply.threadId, root.id);
      assert.deepEqual(reply.mentions, [a]);
      const t = await updated;
      assert.equal(t.replyCount, 1);
      assert.equal(t.lastReplyId, reply.id);
      const page = await ok(sa, "get-thread", { messageId: root.id });
      assert.equal(page.root.replyCount, 1);
      assert.deepEqual(page.replies.map((m) => m.id), [reply.id]);
      assert.equal(page.hasMore, false);
      const bad = await call(sa, "send-message", { courseId, message: "x", threadId: "nope" });
      assert.equal(bad.error.code, "VALIDATION");
    });

    it("search-messages answers ranked hits with highlights", async () => {
      const { sa, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      const sent = await ok(sa, "send-message", { courseId, message: "quantum entanglement notes" });
      await ok(sa, "send-message", { courseId, message: "lunch plans" });
      const hits = await ok(sa, "search-messages", { courseId, q: "entanglement" });
      assert.equal(hits.length, 1);
      assert.equal(hits[0].message.id, sent.id);
      assert.equal(hits[0].highlight, "quantum <b>entanglement</b> notes");
      assert.equal(typeof hits[0].score, "number");
      const bad = await call(sa, "search-messages", { courseId, q: "" });
      assert.equal(bad.error.code, "VALIDATION");
    });

    it("an archived course refuses writes with CHAT_DISABLED and still reads", async () => {
      const { sa, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      const sent = await ok(sa, "send-message", { courseId, message: "before" });
      await rest("PUT", `/api/v1/chat/courses/${courseId}`, { archived: true });
      const refused = await call(sa, "send-message", { courseId, message: "after" });
      assert.equal(refused.error.code, "CHAT_DISABLED");
      const react = await call(sa, "add-reaction", { messageId: sent.id, emoji: "👍" });
      assert.equal(react.error.code, "CHAT_DISABLED");
      const found = await ok(sa, "search-messages", { courseId, q: "before" });
      assert.equal(found[0].message.id, sent.id);
    });

    it("a failed event is a failed ack, or an error event without an ack", async () => {
      const { sa, courseId } = await room();
      const res = await call(sa, "send-message", { courseId, message: "   " });
      assert.equal(res.ok, false);
      assert.equal(res.error.code, "VALIDATION");
      assert.equal(typeof res.error.message, "string");
      const other = await course({});
      const denied = await call(sa, "join-course", { courseId: other });
      assert.deepEqual(denied.ok, false);
      assert.equal(denied.error.code, "NOT_ENROLLED");
      const err = next(sa, "error");
      sa.emit("edit-message", { messageId: "nope", newMessage: "x" });
      const e = await err;
      assert.equal(e.code, "NOT_FOUND");
      const unknown = await call(sa, "no-such-event", {});
      assert.equal(unknown.error.code, "VALIDATION");
    });

    it("edit-message and delete-message reach the room", async () => {
      const { sa, sb, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const sent = await ok(sa, "send-message", { courseId, message: "first" });
      const edited = next(sb, "message-edited", (m) => m.id === sent.id);
      const e = await ok(sa, "edit-message", { messageId: sent.id, newMessage: "second" });
      assert.equal(e.message, "second");
      assert.equal(e.isEdited, true);
      assert.equal((await edited).message, "second");
      // Only the sender edits.
      const denied = await call(sb, "edit-message", { messageId: sent.id, newMessage: "hijack" });
      assert.equal(denied.error.code, "FORBIDDEN");
      const deleted = next(sb, "message-deleted", (d) => d.messageId === sent.id);
      const tomb = await ok(sa, "delete-message", { messageId: sent.id });
      assert.equal(tomb.isDeleted, true);
      assert.equal(tomb.message, "");
      const d = await deleted;
      assert.equal(d.courseId, courseId);
      assert.equal(typeof d.seq, "number");
    });

    it("typing reaches the others, not the typist", async () => {
      const { sa, sb, a, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const mine = collect(sa, "user-typing");
      const theirs = next(sb, "user-typing", (t) => t.courseId === courseId && t.isTyping);
      const ack = await ok(sa, "typing", { courseId, isTyping: true });
      assert.deepEqual(ack, { courseId, isTyping: true });
      const t = await theirs;
      assert.equal(t.userId, a);
      assert.equal(t.name, "Ada");
      const stopped = next(sb, "user-typing", (t) => t.courseId === courseId && !t.isTyping);
      sa.emit("typing", { courseId, isTyping: false });
      await stopped;
      await sleep(100);
      assert.deepEqual(mine, []);
    });

    it("mark-read is acknowledged with the receipt and reaches the room", async () => {
      const { sa, sb, b, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const sent = await ok(sa, "send-message", { courseId, message: "read me" });
      const heard = next(sa, "message-read", (r) => r.messageId === sent.id);
      const receipt = await ok(sb, "mark-read", { messageId: sent.id });
      assert.equal(receipt.userId, b);
      assert.equal(receipt.courseId, courseId);
      assert.equal(typeof receipt.readAt, "string");
      const r = await heard;
      assert.equal(r.userId, b);
    });

    it("presence: user-left and online-users when a client disconnects", async () => {
      const { sa, sb, b, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      const left = next(sa, "user-left", (d) => d.courseId === courseId && d.user.id === b);
      const online = next(
        sa,
        "online-users",
        (d) => d.courseId === courseId && !d.users.some((u) => u.id === b),
      );
      sb.disconnect();
      const ev = await left;
      assert.equal(ev.user.isOnline, false);
      await online;
    });

    it("leave-course stops the room's events", async () => {
      const { sa, sb, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      await ok(sb, "join-course", { courseId });
      assert.deepEqual(await ok(sb, "leave-course", { courseId }), { courseId });
      const seen = collect(sb, "new-message");
      await ok(sa, "send-message", { courseId, message: "after leave" });
      await sleep(150);
      assert.deepEqual(seen, []);
    });

    it("join-course with sinceSeq replays what was missed, in order, before live events", async () => {
      const { sa, ta, b, courseId } = await room();
      await ok(sa, "join-course", { courseId });
      const m1 = await ok(sa, "send-message", { courseId, message: "one" });
      // A second socket of b's that was away: everything after m1 happens while it is gone.
      const m2 = await ok(sa, "send-message", { courseId, message: "two" });
      await ok(sa, "edit-message", { messageId: m1.id, newMessage: "one, edited" });
      await ok(sa, "delete-message", { messageId: m2.id });
      const back = await sock(token(b, "Bob"));
      const seen = [];
      for (const ev of ["new-message", "message-edited", "message-deleted"]) {
        back.on(ev, (d) => seen.push([ev, d]));
      }
      await ok(back, "join-course", { courseId, sinceSeq: m1.seq });
      await until(() => seen.length >= 3);
      assert.deepEqual(
        seen.map(([ev, d]) => [ev, d.id ?? d.messageId]),
        [
          ["new-message", m2.id],
          ["message-edited", m1.id],
          ["message-deleted", m2.id],
        ],
      );
      // Then live, no duplicate.
      const live = await ok(sa, "send-message", { courseId, message: "three" });
      await until(() => seen.length >= 4);
      assert.equal(seen[3][1].id, live.id);
      await sleep(100);
      assert.equal(seen.length, 4);
      void ta;
    });

    it("a refused token gives connect_error with the UNAUTHORIZED message", async () => {
      const bad = [
        "not-a-jwt",
        jwt({ sub: "u", name: "U" }, "another-secret"),
        jwt({ sub: "u", exp: Math.floor(Date.now() / 1000) - 3600 }),
      ];
      for (const t of bad) {
        await assert.rejects(connect(t, mode.opts), (err) => {
          assert.equal(err.message, "UNAUTHORIZED");
          assert.equal(err.data.code, "UNAUTHORIZED");
          assert.equal(typeof err.data.message, "string");
          return true;
        });
      }
      await assert.rejects(connect(undefined, mode.opts), (err) => err.message === "UNAUTHORIZED");
    });

    it("stays connected across several heartbeats", async () => {
      const { sa, courseId } = await room();
      let disconnected = false;
      sa.on("disconnect", () => (disconnected = true));
      await sleep(Math.min(3 * PING_INTERVAL_MS + 200, 4000));
      assert.equal(disconnected, false);
      assert.ok(sa.connected);
      await ok(sa, "join-course", { courseId });
      void PING_TIMEOUT_MS;
    });
  });
}
