// The wire protocol under socket.io-client, checked with plain HTTP requests: the Engine.IO
// handshake, polling packets, acknowledgements, errors, CORS, the payload cap, and the heartbeat
// (a client that stops answering pings is closed and its presence updated).

import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import {
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  URL,
  connect,
  course,
  next,
  ok,
  token,
  uid,
} from "./helpers.mjs";

const SEP = "\x1e";
const EIO = `${URL}/socket.io/?EIO=4`;

async function handshake() {
  const res = await fetch(`${EIO}&transport=polling`);
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(body[0], "0");
  return JSON.parse(body.slice(1));
}

const post = (sid, body) =>
  fetch(`${EIO}&transport=polling&sid=${sid}`, {
    method: "POST",
    body,
    headers: { "Content-Type": "text/plain;charset=UTF-8" },
  });

async function poll(sid) {
  const res = await fetch(`${EIO}&transport=polling&sid=${sid}`);
  assert.equal(res.status, 200);
  return (await res.text()).split(SEP);
}

/** Packets received by a poll but not yet looked at, by sid. */
const backlog = new Map();

/**
 * The next packet satisfying `pred` (from earlier polls first, then polling, answering pings on
 * the way); packets before it are dropped, packets after it are kept for the next call.
 */
async function pollFor(sid, pred) {
  const queue = backlog.get(sid) ?? [];
  backlog.set(sid, queue);
  for (let i = 0; i < 20; i++) {
    while (queue.length) {
      const p = queue.shift();
      if (p === "2") await post(sid, "3");
      if (pred(p)) return p;
    }
    queue.push(...(await poll(sid)));
  }
  throw new Error("packet not received");
}

describe("Engine.IO and Socket.IO on the wire", () => {
  const open = [];
  after(() => open.forEach((s) => s.close()));

  it("the handshake announces sid, upgrades, heartbeat and maxPayload", async () => {
    const h = await handshake();
    assert.equal(typeof h.sid, "string");
    assert.ok(h.sid.length >= 16);
    assert.deepEqual(h.upgrades, ["websocket"]);
    assert.equal(h.pingInterval, PING_INTERVAL_MS);
    assert.equal(h.pingTimeout, PING_TIMEOUT_MS);
    assert.equal(h.maxPayload, 1000000);
    assert.notEqual((await handshake()).sid, h.sid);
  });

  it("answers protocol errors with Engine.IO error codes", async () => {
    const cases = [
      [`${URL}/socket.io/?EIO=3&transport=polling`, 5],
      [`${URL}/socket.io/?transport=polling`, 5],
      [`${EIO}&transport=carrier-pigeon`, 0],
      [`${EIO}&transport=polling&sid=nope`, 1],
    ];
    for (const [url, code] of cases) {
      const res = await fetch(url);
      assert.equal(res.status, 400, url);
      assert.equal((await res.json()).code, code, url);
    }
    const res = await fetch(`${EIO}&transport=polling`, { method: "PUT", body: "x" });
    assert.equal(res.status, 400);
  });

  it("connects, acknowledges by id and refuses a bad token over raw polling", async () => {
    const me = uid("raw");
    const courseId = await course({ [me]: "student" });
    const { sid } = await handshake();
    assert.equal((await post(sid, `40${JSON.stringify({ token: token(me, "Raw") })}`)).status, 200);
    const connected = await pollFor(sid, (p) => p.startsWith("40"));
    assert.equal(typeof JSON.parse(connected.slice(2)).sid, "string");
    // Two events in one body: both applied in order, each acknowledged by its id.
    const body =
      `421${JSON.stringify(["join-course", { courseId }])}` +
      SEP +
      `422${JSON.stringify(["send-message", { courseId, message: "raw hello" }])}`;
    assert.equal(await (await post(sid, body)).text(), "ok");
    const ack1 = JSON.parse((await pollFor(sid, (p) => p.startsWith("431["))).slice(3));
    assert.equal(ack1[0].ok, true);
    assert.equal(ack1[0].data.courseId, courseId);
    const ack2 = JSON.parse((await pollFor(sid, (p) => p.startsWith("432["))).slice(3));
    assert.equal(ack2[0].ok, true);
    assert.equal(ack2[0].data.message, "raw hello");
    // A close packet ends the session.
    await post(sid, "1");
    const gone = await fetch(`${EIO}&transport=polling&sid=${sid}`);
    assert.equal(gone.status, 400);

    const other = await handshake();
    await post(other.sid, `40${JSON.stringify({ token: "garbage" })}`);
    const refused = await pollFor(other.sid, (p) => p.startsWith("44"));
    const err = JSON.parse(refused.slice(2));
    assert.equal(err.message, "UNAUTHORIZED");
    assert.equal(err.data.code, "UNAUTHORIZED");
  });

  it("takes the token from the handshake's Authorization header or ?token=", async () => {
    const me = uid("hdr");
    const res = await fetch(`${EIO}&transport=polling`, {
      headers: { Authorization: `Bearer ${token(me, "Header")}` },
    });
    const { sid } = JSON.parse((await res.text()).slice(1));
    await post(sid, "40");
    assert.ok((await pollFor(sid, (p) => p.startsWith("4"))).startsWith("40{"));
    await post(sid, "1");
    const q = await fetch(`${EIO}&transport=polling&token=${token(uid("q"), "Query")}`);
    const sid2 = JSON.parse((await q.text()).slice(1)).sid;
    await post(sid2, "40");
    assert.ok((await pollFor(sid2, (p) => p.startsWith("4"))).startsWith("40{"));
    await post(sid2, "1");
  });

  it("answers CORS for browsers on other origins", async () => {
    const origin = "http://localhost:5173";
    const pre = await fetch(`${EIO}&transport=polling`, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), origin);
    assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
    assert.match(pre.headers.get("access-control-allow-methods"), /POST/);
    assert.match(pre.headers.get("access-control-allow-headers"), /content-type/);
    const res = await fetch(`${EIO}&transport=polling`, { headers: { Origin: origin } });
    assert.equal(res.headers.get("access-control-allow-origin"), origin);
  });

  it("refuses a body over maxPayload with 413 and closes the session", async () => {
    const { sid, maxPayload } = await handshake();
    const big = "4" + "x".repeat(maxPayload + 10);
    const res = await post(sid, big);
    assert.equal(res.status, 413);
    const gone = await fetch(`${EIO}&transport=polling&sid=${sid}`);
    assert.equal(gone.status, 400);
  });

  it("closes a client that stops answering pings, and updates presence", async () => {
    const me = uid("mute"), watcher = uid("w");
    const courseId = await course({ [me]: "student", [watcher]: "student" });
    const w = await connect(token(watcher, "Watcher"), { transports: ["websocket"] });
    open.push(w);
    await ok(w, "join-course", { courseId });
    const { sid } = await handshake();
    await post(sid, `40${JSON.stringify({ token: token(me, "Mute") })}`);
    await pollFor(sid, (p) => p.startsWith("40"));
    const joined = next(w, "user-joined", (d) => d.user.id === me);
    await post(sid, `421${JSON.stringify(["join-course", { courseId }])}`);
    await joined;
    // From now on: no poll, no pong.
    const started = Date.now();
    const limit = PING_INTERVAL_MS + PING_TIMEOUT_MS + 3000;
    const left = await next(w, "user-left", (d) => d.user.id === me, limit);
    assert.equal(left.courseId, courseId);
    assert.ok(Date.now() - started >= PING_TIMEOUT_MS - 200, "not closed before the ping timeout");
    const gone = await fetch(`${EIO}&transport=polling&sid=${sid}`);
    assert.equal(gone.status, 400);
  });
});
