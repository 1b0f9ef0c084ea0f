// Reference peer for chat-bench: the course-chat contract (shared/CONTRACT.md) on Express +
// socket.io, kept in memory, the way users of the old Node.js backend run it. It implements the
// REST routes the benchmark uses (admin provisioning, send, history, online, healthz) and every
// Socket.IO event of the contract, with the same checks (participant or admin, chat enabled,
// text length, replyTo in the course, clientId idempotency, sender-only edits). Like the old
// backend it has no socket rate limit and no durability: a restart loses everything.
//
//   JWT_SECRET=... PORT=3000 node server.js      (listens on 127.0.0.1 unless HOST is set)

"use strict";

const http = require("http");
const crypto = require("crypto");
const express = require("express");
const jwt = require("jsonwebtoken");
const { Server } = require("socket.io");

const SECRET = process.env.JWT_SECRET;
if (!SECRET) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}
const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || "127.0.0.1";
const MAX_TEXT = 4000;

// ---- state -------------------------------------------------------------------------------
const courses = new Map(); // id -> {id, name, chatEnabled, participants: Map<userId, role>, messages, seq, byClient: Map}
const messagesById = new Map(); // id -> message
const users = new Map(); // id -> {id, name, avatar, role, isOnline, lastSeen}
const connections = new Map(); // userId -> open socket count
let idCounter = 0;

class ChatError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
const STATUS = { VALIDATION: 400, UNAUTHORIZED: 401, FORBIDDEN: 403, NOT_ENROLLED: 403, CHAT_DISABLED: 403, NOT_FOUND: 404 };

function userFromToken(token) {
  if (!token) throw new ChatError("UNAUTHORIZED", "missing bearer token");
  let c;
  try {
    c = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
  } catch (e) {
    throw new ChatError("UNAUTHORIZED", e.name === "TokenExpiredError" ? "token expired" : "invalid token");
  }
  if (!c.exp) throw new ChatError("UNAUTHORIZED", "token has no exp");
  const id = String(c.sub ?? c.id ?? "");
  if (!id) throw new ChatError("UNAUTHORIZED", "token has no subject");
  const role = String(c.role || c.accountType || "student").toLowerCase();
  const name = c.name || [c.firstName, c.lastName].filter(Boolean).join(" ") || id;
  let u = users.get(id);
  if (!u) {
    u = { id, name, avatar: c.avatar || null, role, isOnline: false, lastSeen: null };
    users.set(id, u);
  } else {
    u.name = name;
    u.role = role;
  }
  return u;
}

function course(id) {
  const c = courses.get(id);
  if (!c) throw new ChatError("NOT_FOUND", "course not found");
  return c;
}
function access(user, courseId) {
  if (typeof courseId !== "string" || !courseId) throw new ChatError("VALIDATION", "courseId is required");
  const c = course(courseId);
  if (user.role !== "admin" && !c.participants.has(user.id)) throw new ChatError("NOT_ENROLLED", "not a participant of this course");
  return c;
}
function senderView(u) {
  return { id: u.id, name: u.name, avatar: u.avatar, role: u.role };
}
function userView(u) {
  return { id: u.id, name: u.name, avatar: u.avatar, role: u.role, isOnline: u.isOnline, lastSeen: u.lastSeen };
}
function newId() {
  idCounter += 1;
  return Date.now().toString(36).padStart(10, "0") + idCounter.toString(36).padStart(8, "0");
}

function sendMessage(user, d) {
  d = d || {};
  const c = access(user, d.courseId);
  if (!c.chatEnabled) throw new ChatError("CHAT_DISABLED", "chat is disabled for this course");
  const text = typeof d.message === "string" ? d.message : "";
  if (!text.trim()) throw new ChatError("VALIDATION", "message text is required");
  if (text.length > MAX_TEXT) throw new ChatError("VALIDATION", "message is too long");
  const type = d.messageType || "text";
  if (!["text", "image", "file", "audio", "system"].includes(type)) throw new ChatError("VALIDATION", "bad messageType");
  if (d.clientId) {
    const prior = c.byClient.get(user.id + "\u0000" + d.clientId);
    if (prior) return { message: prior, created: false };
  }
  let replyTo = null;
  if (d.replyTo) {
    const r = messagesById.get(d.replyTo);
    if (!r || r.courseId !== c.id) throw new ChatError("VALIDATION", "replyTo is not a message of this course");
    replyTo = { id: r.id, sender: r.sender, message: r.message.slice(0, 200), isDeleted: r.isDeleted };
  }
  const now = new Date().toISOString();
  c.seq += 1;
  const m = {
    id: newId(), courseId: c.id, seq: c.seq, sender: senderView(user), message: text, messageType: type,
    file: null, replyTo, readBy: [], isEdited: false, editedAt: null, isDeleted: false, deletedAt: null,
    clientId: d.clientId || null, createdAt: now, updatedAt: now,
  };
  c.messages.push(m);
  messagesById.set(m.id, m);
  if (d.clientId) c.byClient.set(user.id + "\u0000" + d.clientId, m);
  return { message: m, created: true };
}

function onlineUsers(c) {
  const out = [];
  for (const id of c.participants.keys()) {
    const u = users.get(id);
    if (u && u.isOnline) out.push(userView(u));
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : 1));
}

// ---- HTTP --------------------------------------------------------------------------------
const app = express();
app.use(express.json({ limit: "64kb" }));
const ok = (res, status, data, message = "ok") => res.status(status).json({ success: true, message, data });
const fail = (res, e) => {
  const code = e instanceof ChatError ? e.code : "INTERNAL";
  res.status(STATUS[code] || 500).json({ success: false, message: e instanceof ChatError ? e.message : "internal error", code });
};
app.get("/healthz", (req, res) => ok(res, 200, { status: "ok" }));
const api = express.Router();
api.use((req, res, next) => {
  try {
    const h = req.headers.authorization || "";
    req.user = userFromToken(h.startsWith("Bearer ") ? h.slice(7) : null);
    next();
  } catch (e) {
    fail(res, e);
  }
});
const admin = (req) => {
  if (req.user.role !== "admin") throw new ChatError("FORBIDDEN", "admin only");
};
api.put("/courses/:courseId", (req, res) => {
  try {
    admin(req);
    let c = courses.get(req.params.courseId);
    if (!c) {
      c = { id: req.params.courseId, name: req.params.courseId, chatEnabled: true, participants: new Map(), messages: [], seq: 0, byClient: new Map() };
      courses.set(c.id, c);
    }
    if (typeof req.body.name === "string") c.name = req.body.name;
    if (typeof req.body.chatEnabled === "boolean") c.chatEnabled = req.body.chatEnabled;
    ok(res, 200, { id: c.id, name: c.name, chatEnabled: c.chatEnabled, participants: [...c.participants.keys()] });
  } catch (e) {
    fail(res, e);
  }
});
api.put("/courses/:courseId/participants/:userId", (req, res) => {
  try {
    admin(req);
    const c = course(req.params.courseId);
    const role = (req.body && req.body.role) || "student";
    c.participants.set(req.params.userId, role);
    ok(res, 200, { courseId: c.id, userId: req.params.userId, role });
  } catch (e) {
    fail(res, e);
  }
});
api.delete("/courses/:courseId/participants/:userId", (req, res) => {
  try {
    admin(req);
    const c = course(req.params.courseId);
    if (!c.participants.delete(req.params.userId)) throw new ChatError("NOT_FOUND", "participant not found");
    ok(res, 200, { courseId: c.id, userId: req.params.userId });
  } catch (e) {
    fail(res, e);
  }
});
api.post("/send", (req, res) => {
  try {
    const { message, created } = sendMessage(req.user, req.body);
    if (created) io.to(message.courseId).emit("new-message", message);
    ok(res, 201, message, "message sent");
  } catch (e) {
    fail(res, e);
  }
});
api.get("/course/:courseId", (req, res) => {
  try {
    const c = access(req.user, req.params.courseId);
    const limit = Math.min(Math.max(parseInt(req.query.limit || "50", 10) || 50, 1), 100);
    const page = Math.max(parseInt(req.query.page || "1", 10) || 1, 1);
    const total = c.messages.length;
    const end = Math.max(total - (page - 1) * limit, 0);
    const messages = c.messages.slice(Math.max(end - limit, 0), end);
    ok(res, 200, { messages, pagination: { page, limit, total, totalPages: Math.ceil(total / limit), hasMore: end - limit > 0 } });
  } catch (e) {
    fail(res, e);
  }
});
api.get("/online/:courseId", (req, res) => {
  try {
    ok(res, 200, onlineUsers(access(req.user, req.params.courseId)));
  } catch (e) {
    fail(res, e);
  }
});
app.use("/api/v1/chat", api);
app.use((req, res) => fail(res, new ChatError("NOT_FOUND", "route not found")));

// ---- Socket.IO ---------------------------------------------------------------------------
const server = http.createServer(app);
const io = new Server(server);

io.use((socket, next) => {
  try {
    const t = (socket.handshake.auth && socket.handshake.auth.token) || socket.handshake.query.token;
    socket.data.user = userFromToken(t);
    next();
  } catch (e) {
    const err = new Error(e.message);
    err.data = { code: e.code || "UNAUTHORIZED" };
    next(err);
  }
});

function inRoom(courseId, userId, except) {
  const room = io.sockets.adapter.rooms.get(courseId);
  if (!room) return false;
  for (const sid of room) {
    if (sid === except) continue;
    const s = io.sockets.sockets.get(sid);
    if (s && s.data.user.id === userId) return true;
  }
  return false;
}

io.on("connection", (socket) => {
  const user = socket.data.user;
  const n = (connections.get(user.id) || 0) + 1;
  connections.set(user.id, n);
  if (n === 1) {
    user.isOnline = true;
  }
  const typingTimers = new Map();

  const handle = (fn) => (data, cb) => {
    try {
      const result = fn(data || {});
      if (typeof cb === "function") cb({ ok: true, data: result });
    } catch (e) {
      const error = { code: e instanceof ChatError ? e.code : "INTERNAL", message: e instanceof ChatError ? e.message : "internal error" };
      if (typeof cb === "function") cb({ ok: false, error });
      else socket.emit("error", error);
    }
  };

  socket.on("join-course", handle((d) => {
    const c = access(user, d.courseId);
    const first = !inRoom(c.id, user.id, socket.id);
    socket.join(c.id);
    const online = onlineUsers(c);
    socket.emit("online-users", { courseId: c.id, users: online });
    if (first) {
      socket.to(c.id).emit("user-joined", { courseId: c.id, user: userView(user) });
      socket.to(c.id).emit("online-users", { courseId: c.id, users: online });
    }
    if (d.sinceSeq != null) {
      for (const m of c.messages) if (m.seq > d.sinceSeq) socket.emit("new-message", m);
    }
    return { courseId: c.id, users: online };
  }));

  socket.on("leave-course", handle((d) => {
    const c = course(d.courseId);
    if (socket.rooms.has(c.id)) {
      socket.leave(c.id);
      if (!inRoom(c.id, user.id)) io.to(c.id).emit("user-left", { courseId: c.id, user: userView(user) });
    }
    return { courseId: c.id };
  }));

  socket.on("send-message", handle((d) => {
    const { message, created } = sendMessage(user, d);
    if (created) io.to(message.courseId).emit("new-message", message);
    return message;
  }));

  socket.on("edit-message", handle((d) => {
    const m = messagesById.get(d.messageId);
    if (!m || m.isDeleted) throw new ChatError("NOT_FOUND", "message not found");
    const c = access(user, m.courseId);
    if (!c.chatEnabled) throw new ChatError("CHAT_DISABLED", "chat is disabled for this course");
    if (m.sender.id !== user.id) throw new ChatError("FORBIDDEN", "only the sender edits a message");
    const text = typeof d.newMessage === "string" ? d.newMessage : "";
    if (!text.trim() || text.length > MAX_TEXT) throw new ChatError("VALIDATION", "bad message text");
    m.message = text;
    m.isEdited = true;
    m.editedAt = m.updatedAt = new Date().toISOString();
    io.to(m.courseId).emit("message-edited", m);
    return m;
  }));

  socket.on("delete-message", handle((d) => {
    const m = messagesById.get(d.messageId);
    if (!m) throw new ChatError("NOT_FOUND", "message not found");
    const c = access(user, m.courseId);
    const instructor = c.participants.get(user.id) === "instructor";
    if (m.sender.id !== user.id && !instructor && user.role !== "admin") throw new ChatError("FORBIDDEN", "not yours to delete");
    if (!m.isDeleted) {
      m.isDeleted = true;
      m.message = "";
      m.file = null;
      m.deletedAt = m.updatedAt = new Date().toISOString();
      io.to(m.courseId).emit("message-deleted", { messageId: m.id, courseId: m.courseId, seq: m.seq });
    }
    return m;
  }));

  socket.on("typing", handle((d) => {
    const c = access(user, d.courseId);
    if (!c.chatEnabled) throw new ChatError("CHAT_DISABLED", "chat is disabled for this course");
    const isTyping = !!d.isTyping;
    clearTimeout(typingTimers.get(c.id));
    socket.to(c.id).emit("user-typing", { courseId: c.id, userId: user.id, name: user.name, isTyping });
    if (isTyping) {
      typingTimers.set(c.id, setTimeout(() => {
        socket.to(c.id).emit("user-typing", { courseId: c.id, userId: user.id, name: user.name, isTyping: false });
      }, 5000));
    }
    return { courseId: c.id, isTyping };
  }));

  socket.on("mark-read", handle((d) => {
    const m = messagesById.get(d.messageId);
    if (!m) throw new ChatError("NOT_FOUND", "message not found");
    const c = access(user, m.courseId);
    const readAt = new Date().toISOString();
    for (const x of c.messages) {
      if (x.seq > m.seq) break;
      if (!x.readBy.some((r) => r.userId === user.id)) x.readBy.push({ userId: user.id, readAt });
    }
    const receipt = { messageId: m.id, courseId: c.id, userId: user.id, readAt };
    io.to(c.id).emit("message-read", receipt);
    return receipt;
  }));

  socket.on("disconnecting", () => {
    for (const t of typingTimers.values()) clearTimeout(t);
    const left = (connections.get(user.id) || 1) - 1;
    if (left <= 0) {
      connections.delete(user.id);
      user.isOnline = false;
      user.lastSeen = new Date().toISOString();
    } else {
      connections.set(user.id, left);
    }
    for (const room of socket.rooms) {
      if (room === socket.id || !courses.has(room)) continue;
      if (!inRoom(room, user.id, socket.id)) {
        socket.to(room).emit("user-left", { courseId: room, user: userView(user) });
        socket.to(room).emit("online-users", { courseId: room, users: onlineUsers(courses.get(room)) });
      }
    }
  });
});

server.listen(PORT, HOST, () => {
  console.log(`peer listening on http://${HOST}:${server.address().port} (pid ${process.pid})`);
});
const stop = () => {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
