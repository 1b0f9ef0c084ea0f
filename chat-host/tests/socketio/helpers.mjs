// Shared by the Socket.IO tests: the server's address, HS256 tokens made with node:crypto,
// course provisioning over REST, and small promise helpers around socket.io-client.
//
// run.sh starts chat-host and sets CHAT_URL and JWT_SECRET (and CHAT_PING_INTERVAL_MS /
// CHAT_PING_TIMEOUT_MS, the short heartbeat it started the server with).

import { createHmac, randomUUID } from "node:crypto";
import { io } from "socket.io-client";

export const URL = process.env.CHAT_URL ?? "http://127.0.0.1:8080";
export const SECRET = process.env.JWT_SECRET ?? "socketio-test-secret";
export const PING_INTERVAL_MS = Number(process.env.CHAT_PING_INTERVAL_MS ?? 25000);
export const PING_TIMEOUT_MS = Number(process.env.CHAT_PING_TIMEOUT_MS ?? 20000);
/** How long a test waits for something that must happen. */
export const WAIT = 5000;

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An HS256 JWT for these claims, valid for an hour unless `exp` is given. */
export function jwt(claims, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iat: now, exp: now + 3600, ...claims };
  const head = b64url({ alg: "HS256", typ: "JWT" }) + "." + b64url(body);
  return head + "." + createHmac("sha256", secret).update(head).digest("base64url");
}

export const token = (sub, name, role = "student") => jwt({ sub, name, role });
export const ADMIN = token("admin", "Admin", "admin");

export async function rest(method, path, body) {
  const res = await fetch(URL + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json.data;
}

/**
 * A fresh course with these participants ({id: role}); returns its id. Each test makes its own,
 * so tests do not see each other's events or share a rate limit.
 */
export async function course(participants) {
  const id = "c-" + randomUUID();
  await rest("PUT", `/api/v1/chat/courses/${id}`, { name: "Course " + id.slice(2, 8) });
  for (const [user, role] of Object.entries(participants)) {
    await rest("PUT", `/api/v1/chat/courses/${id}/participants/${user}`, { role });
  }
  return id;
}

/** A unique user id (so presence is not shared between tests). */
export const uid = (prefix = "u") => `${prefix}-${randomUUID().slice(0, 8)}`;

/**
 * A connected socket.io-client socket: the client's defaults (polling, then upgrade) plus `opts`
 * (e.g. `{transports: ["websocket"]}`), with `auth: {token}`. Resolves on `connect`, rejects on
 * `connect_error`.
 */
export function connect(tok, opts = {}) {
  const socket = io(URL, { auth: { token: tok }, ...opts });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("connect timed out"));
    }, WAIT);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

/** The next `event` on `socket` whose data satisfies `pred`. */
export function next(socket, event, pred = () => true, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    function on(data) {
      if (!pred(data)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(data);
    }
    socket.on(event, on);
  });
}

/** Collects every `event` on `socket` into an array (for "nothing arrived" checks). */
export function collect(socket, event) {
  const seen = [];
  socket.on(event, (d) => seen.push(d));
  return seen;
}

/** Emits with an acknowledgement; resolves with the ack payload `{ok, data | error}`. */
export function call(socket, event, data) {
  return socket.timeout(WAIT).emitWithAck(event, data);
}

/** Like `call`, but resolves with `data` and throws on `ok: false`. */
export async function ok(socket, event, data) {
  const res = await call(socket, event, data);
  if (!res || res.ok !== true) {
    throw new Error(`${event} failed: ${JSON.stringify(res)}`);
  }
  return res.data;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `cond()` holds, polling every 20 ms. */
export async function until(cond, ms = WAIT) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error("condition not met in time");
}
