// The rendered client under Node against a scripted peer instead of a server, for frame
// sequences a real server makes hard to hit on purpose (a live message that overtakes a
// recovery reply): node fake_peer.js <client.js> <scenario>. Prints one JSON object: the events
// the client emitted, the frames it sent and what the scenario adds; test_node_client.py
// asserts on it.
"use strict";

const [clientPath, scenarioName] = process.argv.slice(2);
const ActionheroClient = require(clientPath);

const TIMEOUT_MS = 5000;
const sockets = []; // every FakeSocket the client opened, in order
let socketOpened = null; // resolves the wait for the next socket

/** A WebSocket the scenario plays the server side of. */
class FakeSocket {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this._read = 0;
    this._waiting = null;
    sockets.push(this);
    if (socketOpened) socketOpened(this);
  }

  send(data) {
    this.sent.push(JSON.parse(data));
    if (this._waiting) this._waiting();
  }

  close() {}

  /** The peer's side: push a frame to the client. */
  push(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }

  /** The next frame the client sends (the ones already sent first, in order). */
  next() {
    if (this.sent.length > this._read) return Promise.resolve(this.sent[this._read++]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the client sent nothing more")), TIMEOUT_MS);
      this._waiting = () => {
        clearTimeout(timer);
        this._waiting = null;
        resolve(this.sent[this._read++]);
      };
    });
  }

  /** Answer `frame` with `data` (PROTOCOL.md section 2.2). */
  reply(frame, data) {
    this.push({ status: "OK", context: "response", data, messageId: frame.messageId });
  }

  /** Open, welcome, and answer the handshake's detailsView as connection `id`. */
  async accept(id) {
    this.onopen();
    this.push({ context: "api", welcome: "hello" });
    const details = await this.next();
    this.reply(details, { id, fingerprint: "fp", type: "webSocket", rooms: [] });
  }
}

function nextSocket() {
  if (sockets.length && !sockets[sockets.length - 1].taken) {
    const socket = sockets[sockets.length - 1];
    socket.taken = true;
    return Promise.resolve(socket);
  }
  return new Promise((resolve) => {
    socketOpened = (socket) => {
      socketOpened = null;
      socket.taken = true;
      resolve(socket);
    };
  });
}

/** A client on FakeSocket whose events land in `events` as [name, argument]. */
function trackedClient(events) {
  const client = new ActionheroClient({
    url: "http://fake",
    WebSocket: FakeSocket,
    ping: 0,
    reconnect: { min: 1, max: 1 },
  });
  for (const name of ["connected", "disconnected", "reconnect", "error", "say", "join", "leave",
    "recover", "api"]) {
    client.on(name, (arg) => events.push([name, arg instanceof Error ? arg.message : arg ?? null]));
  }
  return client;
}

function say(offset, epoch, message) {
  return { context: "user", message, room: "lobby", from: "peer", sentAt: 1000 + offset, offset,
    epoch };
}

/** Connect as `id` and join `lobby`; returns the socket. */
async function connectAndJoin(client, id) {
  const connected = client.connect();
  const socket = await nextSocket();
  await socket.accept(id);
  await connected;
  const joined = client.roomAdd("lobby");
  socket.reply(await socket.next(), true);
  await joined;
  return socket;
}

/** Drop `socket` as a network failure would; returns the client's next socket, handshaken. */
async function reconnect(socket, id) {
  socket.onclose({ code: 1006, reason: "" });
  const next = await nextSocket();
  await next.accept(id);
  return next;
}

/** Until `client` emits `name`. */
function eventOf(client, name) {
  return new Promise((resolve) => client.on(name, resolve));
}

const SCENARIOS = {
  /** Missed 3 and 4; live 4 (again) and 5 overtake the reply; 5 comes again after it. */
  async recovery(client, events) {
    const first = await connectAndJoin(client, "c1");
    first.push(say(1, "e1", "one"));
    first.push(say(2, "e1", "two"));
    const second = await reconnect(first, "c2");
    const rejoin = await second.next();
    second.push(say(4, "e1", "four"));
    second.push(say(5, "e1", "five"));
    const recovered = eventOf(client, "recover");
    second.reply(rejoin, {
      recovered: true,
      messages: [say(4, "e1", "four"), say(3, "e1", "three")],
      offset: 4,
      epoch: "e1",
    });
    await recovered;
    second.push(say(5, "e1", "five"));
    second.push(say(6, "e1", "six"));
    const third = await reconnect(second, "c3");
    return { rejoin, nextRejoin: await third.next(), rooms: client.rooms };
  },

  /** The room's history was lost: a new epoch, recovered false, and from there on its offsets. */
  async newEpoch(client, events) {
    const first = await connectAndJoin(client, "c1");
    first.push(say(7, "e1", "old"));
    const second = await reconnect(first, "c2");
    const rejoin = await second.next();
    const recovered = eventOf(client, "recover");
    second.reply(rejoin, { recovered: false, messages: [say(1, "e2", "new")], offset: 1,
      epoch: "e2" });
    await recovered;
    second.push(say(1, "e2", "new")); // a second copy of a recovered offset: never emitted
    second.push(say(2, "e2", "newer"));
    const third = await reconnect(second, "c3");
    return { rejoin, nextRejoin: await third.next() };
  },

  /** Nothing said since: an empty recovery, and the position stays. */
  async nothingMissed(client, events) {
    const first = await connectAndJoin(client, "c1");
    first.push(say(3, "e1", "three"));
    const second = await reconnect(first, "c2");
    const rejoin = await second.next();
    const recovered = eventOf(client, "recover");
    second.reply(rejoin, { recovered: true, messages: [], offset: 3, epoch: "e1" });
    await recovered;
    const third = await reconnect(second, "c3");
    return { rejoin, nextRejoin: await third.next() };
  },

  /** A room where no message was seen re-joins as before, without `since`, and no recover. */
  async noPosition(client, events) {
    const first = await connectAndJoin(client, "c1");
    const second = await reconnect(first, "c2");
    const rejoin = await second.next();
    const reconnected = eventOf(client, "reconnect");
    second.reply(rejoin, true);
    await reconnected;
    second.push(say(1, "e1", "first"));
    return { rejoin };
  },

  /** A re-join refused: `error` naming the room, the held messages let go, retried with since. */
  async failedRejoin(client, events) {
    const first = await connectAndJoin(client, "c1");
    first.push(say(2, "e1", "two"));
    const second = await reconnect(first, "c2");
    const rejoin = await second.next();
    const failed = eventOf(client, "error");
    second.push({ status: "room does not exist", error: "room does not exist", context: "response",
      messageId: rejoin.messageId });
    await failed;
    const retry = await second.next();
    const recovered = eventOf(client, "recover");
    second.reply(retry, { recovered: true, messages: [say(3, "e1", "three")], offset: 3,
      epoch: "e1" });
    await recovered;
    return { rejoin, retry, rooms: client.rooms };
  },

  /** roomLeave forgets the room's position: joined again, it starts afresh. */
  async leaveForgets(client, events) {
    const first = await connectAndJoin(client, "c1");
    first.push(say(2, "e1", "two"));
    const left = client.roomLeave("lobby");
    first.reply(await first.next(), true);
    await left;
    const joined = client.roomAdd("lobby");
    first.reply(await first.next(), true);
    await joined;
    const second = await reconnect(first, "c2");
    return { rejoin: await second.next() };
  },

  /** roomHistory's frames; its reply is where a room with no message seen yet recovers from. */
  async history(client, events) {
    const first = await connectAndJoin(client, "c1");
    const kept = { room: "lobby", epoch: "e1", offset: 9, messages: [say(9, "e1", "nine")] };
    const withLimit = client.roomHistory("lobby", 5);
    const limited = await first.next();
    first.reply(limited, kept);
    const byCallback = new Promise((resolve) => client.roomHistory("lobby", resolve));
    const unlimited = await first.next();
    first.reply(unlimited, kept);
    const replies = [await withLimit, await byCallback];
    const second = await reconnect(first, "c2");
    return { limited, unlimited, replies, rejoin: await second.next() };
  },

  /** Presence frames fire `join` and `leave` with the frame; another `event` is `api`. */
  async presence(client, events) {
    const first = await connectAndJoin(client, "c1");
    const frames = [
      { context: "presence", event: "join", room: "lobby", id: "c1", joinedAt: 5,
        info: { name: "Ann" } },
      { context: "presence", event: "leave", room: "lobby", id: "c0", reason: "disconnected" },
      { context: "presence", event: "typing", room: "lobby", id: "c0" },
    ];
    frames.forEach((frame) => first.push(frame));
    return { frames };
  },
};

async function main() {
  const events = [];
  const client = trackedClient(events);
  const out = await SCENARIOS[scenarioName](client, events);
  client.disconnect();
  out.events = events;
  console.log(JSON.stringify(out));
}

const watchdog = setTimeout(() => {
  console.error("scenario " + scenarioName + " timed out");
  process.exit(2);
}, TIMEOUT_MS * 2);
main().then(() => clearTimeout(watchdog), (error) => {
  console.error(error.stack);
  process.exit(1);
});
