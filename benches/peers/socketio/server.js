// The Socket.IO peer of confab's bench: a chat server written the way the Socket.IO docs show
// (https://socket.io/docs/v4/rooms/, .../emitting-events/#acknowledgements), so that the bench
// measures what a user would pick instead of confab.
//
// Events (what crates/bench/src/sio.rs speaks):
//   handshake auth {name}                   -> rejected without a name
//   "join" {rooms:[id,...]}, ack            -> socket.join(each); ack({rooms:{id: last seq}})
//   "send" {room, client_id, body}, ack     -> next seq of the room; io.to(room).emit("msg", event);
//                                              ack({room, seq, id, ts, client_id})
// Like the floor and unlike confab, nothing is stored: seqs live in memory.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 8091);
const host = process.env.HOST || "127.0.0.1";

const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200).end("ok");
  } else {
    res.writeHead(404).end();
  }
});
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  maxHttpBufferSize: 65536,
});

const seqs = new Map(); // room -> last seq
let nextId = 0;

io.use((socket, next) => {
  const name = socket.handshake.auth && socket.handshake.auth.name;
  if (typeof name !== "string" || name.length === 0) {
    return next(new Error("unauthorized"));
  }
  socket.data.user = { id: name, name };
  next();
});

io.on("connection", (socket) => {
  socket.on("join", (msg, ack) => {
    const rooms = {};
    for (const room of (msg && msg.rooms) || []) {
      socket.join(room);
      rooms[room] = seqs.get(room) || 0;
    }
    if (typeof ack === "function") ack({ rooms });
  });

  socket.on("send", (msg, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    if (!msg || typeof msg.room !== "string" || typeof msg.body !== "string") {
      return reply({ error: "bad_request", client_id: msg && msg.client_id });
    }
    if (!socket.rooms.has(msg.room)) {
      return reply({ error: "forbidden", client_id: msg.client_id });
    }
    const seq = (seqs.get(msg.room) || 0) + 1;
    seqs.set(msg.room, seq);
    const event = {
      room: msg.room,
      seq,
      id: `e${nextId++}`,
      kind: "text",
      from: socket.data.user,
      body: msg.body,
      ts: Date.now(),
      client_id: msg.client_id,
    };
    io.to(msg.room).emit("msg", event);
    reply({ room: msg.room, seq, id: event.id, ts: event.ts, client_id: msg.client_id });
  });
});

httpServer.listen(port, host, () => {
  console.error(`socket.io peer listening on ${host}:${port}`);
});

const stop = () => io.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
