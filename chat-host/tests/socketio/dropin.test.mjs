// What front ends written for the Node.js server load and do beside the events: the client
// bundle at /socket.io/socket.io.js, a voice message recorded by the browser, and an admin who
// watches a room without being one of its participants.

import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { ADMIN, URL, connect, course, next, ok, sleep, token, uid } from "./helpers.mjs";

// The package the suite installed from the registry (package-lock.json pins the same version as
// chat-host/assets/socket.io-client/VERSION).
const pkg = (path) => new globalThis.URL(`./node_modules/socket.io-client/${path}`, import.meta.url);
const clientDist = (name) => readFile(pkg(`dist/${name}`));
const clientVersion = JSON.parse(await readFile(pkg("package.json"), "utf8")).version;
const fixture = (name) => readFile(new globalThis.URL(`../../../chat-core/tests/fixtures/media/${name}`, import.meta.url));

describe("drop-in behaviour", () => {
  const open = [];
  after(() => open.forEach((s) => s.close()));
  const sock = async (tok, opts) => {
    const s = await connect(tok, opts);
    open.push(s);
    return s;
  };

  it("serves the same socket.io.js as the npm package, with its version as ETag", async () => {
    for (const name of ["socket.io.js", "socket.io.min.js", "socket.io.esm.min.js", "socket.io.min.js.map"]) {
      const res = await fetch(`${URL}/socket.io/${name}`);
      assert.equal(res.status, 200, name);
      const body = Buffer.from(await res.arrayBuffer());
      assert.ok(body.equals(await clientDist(name)), `${name} differs from the npm package's`);
      assert.equal(res.headers.get("etag"), `"${clientVersion}"`);
    }
    const again = await fetch(`${URL}/socket.io/socket.io.js`, {
      headers: { "If-None-Match": `"${clientVersion}"` },
    });
    assert.equal(again.status, 304);
  });

  it("a recorded voice message (Opus in WebM) arrives as audio/webm", async () => {
    const a = uid("a"), b = uid("b");
    const courseId = await course({ [a]: "student", [b]: "student" });
    const sb = await sock(token(b, "Bob"));
    await ok(sb, "join-course", { courseId });
    const heard = next(sb, "new-message", (m) => m.courseId === courseId);
    const form = new FormData();
    form.append("courseId", courseId);
    form.append("file", new Blob([await fixture("voice.webm")], { type: "audio/webm;codecs=opus" }), "voice.webm");
    const res = await fetch(`${URL}/api/v1/chat/send`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token(a, "Ada")}` },
      body: form,
    });
    assert.equal(res.status, 201, await res.clone().text());
    const m = await heard;
    assert.equal(m.messageType, "audio");
    assert.equal(m.file.mimeType, "audio/webm");
    // MediaRecorder writes no duration; it is read from the last frame (0.5 s of tone).
    assert.ok(m.file.durationMs >= 480 && m.file.durationMs <= 560, `durationMs ${m.file.durationMs}`);
    // A film is still refused.
    const film = new FormData();
    film.append("courseId", courseId);
    film.append("file", new Blob([await fixture("av.webm")], { type: "audio/webm" }), "clip.webm");
    const refused = await fetch(`${URL}/api/v1/chat/send`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token(a, "Ada")}` },
      body: film,
    });
    assert.equal(refused.status, 415);
    assert.equal((await refused.json()).code, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("an admin watching a room is not one of its online participants", async () => {
    const a = uid("a");
    const courseId = await course({ [a]: "student" });
    const sa = await sock(token(a, "Ada"));
    await ok(sa, "join-course", { courseId });
    const joinedEvents = [];
    sa.on("user-joined", (d) => joinedEvents.push(d));
    const admin = await sock(ADMIN);
    const ack = await ok(admin, "join-course", { courseId });
    assert.deepEqual(ack.users.map((u) => u.id), [a]);
    await sleep(400);
    assert.deepEqual(joinedEvents, []);
    const res = await fetch(`${URL}/api/v1/chat/online/${courseId}`, {
      headers: { Authorization: `Bearer ${token(a, "Ada")}` },
    });
    assert.deepEqual((await res.json()).data.map((u) => u.id), [a]);
  });

  it("marking one's own message read answers when it was sent, with no event", async () => {
    const a = uid("a"), b = uid("b");
    const courseId = await course({ [a]: "student", [b]: "student" });
    const sa = await sock(token(a, "Ada"));
    const sb = await sock(token(b, "Bob"));
    await ok(sa, "join-course", { courseId });
    await ok(sb, "join-course", { courseId });
    const m = await ok(sa, "send-message", { courseId, message: "mine" });
    const reads = [];
    sb.on("message-read", (d) => reads.push(d));
    const receipt = await ok(sa, "mark-read", { messageId: m.id });
    assert.deepEqual(receipt, { messageId: m.id, courseId, userId: a, readAt: m.createdAt });
    await sleep(300);
    assert.deepEqual(reads, []);
  });
});
