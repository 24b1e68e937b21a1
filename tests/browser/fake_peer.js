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
let handedOut = 0; // how many of them the scenario has taken
let socketOpened = null; // wakes a scenario waiting for the next socket

/** A WebSocket the scenario plays the server side of. */
class FakeSocket {
  constructor() {
    this.sent = [];
    this._read = 0;
    this._waiting = null;
    sockets.push(this);
    if (socketOpened) socketOpened();
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

/** The next socket the client opens (or has opened and the scenario has not taken yet). */
function nextSocket() {
  return new Promise((resolve) => {
    const take = () => {
      socketOpened = null;
      if (sockets.length > handedOut) resolve(sockets[handedOut++]);
      else socketOpened = take;
    };
    take();
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

/**
 * Join, see the `seen` messages, lose the link; on the new one push `live` ahead of the re-join's
 * reply, then answer it with `recovery`. Returns the new socket and the re-join frame.
 */
async function dropAndRecover(client, seen, live, recovery) {
  const first = await connectAndJoin(client, "c1");
  seen.forEach((frame) => first.push(frame));
  const second = await reconnect(first, "c2");
  const rejoin = await second.next();
  live.forEach((frame) => second.push(frame));
  const recovered = eventOf(client, "recover");
  second.reply(rejoin, recovery);
  await recovered;
  return { second, rejoin };
}

/** Lose the link once more: the next socket's re-join frame, left unanswered. */
async function nextRejoin(socket) {
  const third = await reconnect(socket, "c3");
  return third.next();
}

const SCENARIOS = {
  /** Missed 3 and 4; live 4 (again) and 5 overtake the reply; 5 comes again after it. */
  async recovery(client) {
    const { second, rejoin } = await dropAndRecover(
      client,
      [say(1, "e1", "one"), say(2, "e1", "two")],
      [say(4, "e1", "four"), say(5, "e1", "five")],
      {
        recovered: true,
        messages: [say(4, "e1", "four"), say(3, "e1", "three")],
        offset: 4,
        epoch: "e1",
      },
    );
    second.push(say(5, "e1", "five"));
    second.push(say(6, "e1", "six"));
    return { rejoin, nextRejoin: await nextRejoin(second), rooms: client.rooms };
  },

  /** The room's history was lost: a new epoch, recovered false, and from there on its offsets. */
  async newEpoch(client) {
    const { second, rejoin } = await dropAndRecover(client, [say(7, "e1", "old")], [], {
      recovered: false,
      messages: [say(1, "e2", "new")],
      offset: 1,
      epoch: "e2",
    });
    second.push(say(1, "e2", "new")); // a second copy of a recovered offset: never emitted
    second.push(say(2, "e2", "newer"));
    return { rejoin, nextRejoin: await nextRejoin(second) };
  },

  /** Nothing said since: an empty recovery, and the position stays. */
  async nothingMissed(client) {
    const { second, rejoin } = await dropAndRecover(client, [say(3, "e1", "three")], [], {
      recovered: true,
      messages: [],
      offset: 3,
      epoch: "e1",
    });
    return { rejoin, nextRejoin: await nextRejoin(second) };
  },

  /** The room keeps no history any more (made again without): the client stops asking. */
  async historyGone(client) {
    const { second, rejoin } = await dropAndRecover(client, [say(3, "e1", "three")], [], {
      recovered: false,
      messages: [],
      offset: 0,
      epoch: null,
    });
    return { rejoin, nextRejoin: await nextRejoin(second) };
  },

  /** A room where no message was seen re-joins as before, without `since`, and no recover. */
  async noPosition(client) {
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
  async failedRejoin(client) {
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
  async leaveForgets(client) {
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
  async history(client) {
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
  async presence(client) {
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
  const out = await SCENARIOS[scenarioName](client);
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
