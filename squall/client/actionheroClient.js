/*
 * ActionheroClient: the client for a Squall server, in the browser and under Node >= 20.
 *
 * This is a template: at every boot squall/client/render.py fills in the server's config and
 * writes it to public/<clientJsPath>/<clientJsName>.js (and .min.js). The wire protocol is
 * PROTOCOL.md; this file implements its section 7. Frames are plain JSON over a standard
 * WebSocket (no Primus), and there are no dependencies and no build step.
 *
 *   const client = new ActionheroClient();
 *   client.on("say", (message) => show(message.from, message.message));
 *   client.on("join", (member) => showMember(member.id, member.info));
 *   client.connect((error, details) => client.roomAdd("defaultRoom"));
 *
 * In a room with history (PROTOCOL.md section 9) the client remembers the last message it saw;
 * after a reconnect it re-joins asking for what it missed, and emits those messages as `say`
 * events, in order and each once, before any newer one, then `recover`.
 *
 * Every verb takes an optional callback that receives one argument, the reply frame (check
 * `reply.error`). Without a callback it returns a Promise resolving with that reply, also when the
 * reply carries an error; it rejects only when the client is closed for good before the reply.
 */
(function (root) {
  "use strict";

  // servers.websocket.client plus server.pathname and web.fingerprint.cookieKey.
  const DEFAULTS = /* squall:defaults */ {};

  // servers.websocket.clientUrl: a URL, or an expression evaluated when a client is created.
  function defaultUrl() {
    return /* squall:url */ null;
  }

  // Closes after which reconnecting would be wrong (PROTOCOL.md section 6): quit or destroy
  // (4000), a connection refused by middleware (4001), a policy violation such as a reader
  // too slow for the server's send buffer (1008).
  const FINAL_CLOSE_CODES = [4000, 4001, 1008];

  // A presence frame's `event` is the client event it fires (PROTOCOL.md section 8).
  const PRESENCE_EVENTS = ["join", "leave"];

  /** A reply frame made by the client, shaped like a server failure (PROTOCOL.md section 2.2). */
  function errorReply(message, messageId) {
    return { status: message, error: message, context: "response", messageId: messageId };
  }

  /**
   * Call user code (a listener or a callback) so that its exception cannot leave the client
   * half way through a state change: the exception is rethrown on a fresh stack, where the
   * page's (or Node's) handling of uncaught errors reports it.
   */
  function callSafely(fn, args) {
    try {
      fn.apply(null, args);
    } catch (error) {
      setTimeout(() => {
        throw error;
      }, 0);
    }
  }

  /** "Full jitter" backoff: uniform in [0, min * 2^attempt], the ceiling capped at max. */
  function backoff(attempt, reconnect) {
    return Math.random() * Math.min(reconnect.max, reconnect.min * Math.pow(2, attempt));
  }

  /** The value of a cookie the page can read (not an httpOnly one), else null. */
  function readCookie(name) {
    if (!name || typeof document === "undefined" || !document.cookie) return null;
    const prefix = name + "=";
    const found = document.cookie.split("; ").find((pair) => pair.startsWith(prefix));
    return found ? decodeURIComponent(found.slice(prefix.length)) : null;
  }

  class ActionheroClient {
    /**
     * Options default to the server's config (see DEFAULTS); `url` to clientUrl. Under Node 20,
     * which has no global WebSocket, pass a constructor as `options.WebSocket`.
     */
    constructor(options) {
      options = options || {};
      this.options = Object.assign({}, DEFAULTS, options);
      this.options.reconnect = Object.assign({}, DEFAULTS.reconnect, options.reconnect);
      if (this.options.url == null) this.options.url = defaultUrl();

      this.state = "disconnected";
      this.id = null;
      this.fingerprint = null;
      this.details = null;
      this._detailsReply = null; // the detailsView reply connect() callbacks get
      this.rooms = [];
      this.welcomeMessage = null;

      this._listeners = {};
      this._socket = null;
      this._messageId = 0;
      this._pending = new Map(); // messageId -> settle, for frames sent on the current socket
      this._queue = []; // [frame, settle] waiting for the connection
      this._waiters = []; // connect() callbacks waiting for the connection
      this._attempt = 0; // failed connection attempts since the link was last up
      this._wasUp = false; // whether this connect() has had a link, so a new one is a reconnect
      this._attemptTimer = null;
      this._retryTimer = null;
      this._pingTimer = null;
      this._lostRooms = []; // rooms whose re-join after a reconnect failed: retried
      this._rejoinAttempt = 0;
      this._rejoinTimer = null;
      this._positions = new Map(); // room -> {offset, epoch} of the last message seen there
      this._held = new Map(); // room -> say frames that wait for that room's recovery
    }

    // ----- events -----------------------------------------------------------------------------

    /** Listen to an event: connected, disconnected, error, reconnect, reconnecting, message,
     * alert, api, welcome, say, join, leave or recover. */
    on(name, fn) {
      (this._listeners[name] = this._listeners[name] || []).push(fn);
      return this;
    }

    off(name, fn) {
      const listeners = this._listeners[name] || [];
      const index = listeners.indexOf(fn);
      if (index >= 0) listeners.splice(index, 1);
      return this;
    }

    _emit(name, ...args) {
      (this._listeners[name] || []).slice().forEach((fn) => callSafely(fn, args));
    }

    // ----- connection -------------------------------------------------------------------------

    /**
     * Open the socket, retrying with backoff until it is up or the client gives up. The callback
     * gets (error, details), details being the whole detailsView reply (details.data.id), as
     * ActionHero's client (PROTOCOL.md section 7); without a callback this returns a Promise of
     * it. client.details keeps its data. Verbs called meanwhile wait in the queue.
     */
    connect(callback) {
      let promise;
      if (typeof callback !== "function") {
        promise = new Promise((resolve, reject) => {
          callback = (error, details) => (error ? reject(error) : resolve(details));
        });
      }
      if (this.state === "connected") {
        callSafely(callback, [null, this._detailsReply]);
        return promise;
      }
      if (!(this.options.WebSocket || root.WebSocket)) {
        throw new TypeError("no global WebSocket here: pass one as options.WebSocket");
      }
      this._waiters.push(callback);
      if (this.state === "disconnected") {
        this._wasUp = false;
        this._attempt = 0;
        this.state = "connecting";
        this._open();
      }
      return promise;
    }

    /** Close for good: no reconnect, pending and queued verbs fail, state "disconnected". */
    disconnect() {
      if (this.state !== "disconnected") this._finish(new Error("the client disconnected"));
    }

    _open() {
      const WebSocketClass = this.options.WebSocket || root.WebSocket;
      const socket = new WebSocketClass(this._socketUrl());
      this._socket = socket;
      const timeout = this.options.timeout;
      if (timeout) {
        this._attemptTimer = setTimeout(
          () => this._drop(socket, "no connection within " + timeout + " ms"),
          timeout,
        );
      }
      // A socket given up on (timed out, dead) may still fire: only the current one counts.
      socket.onopen = () => {
        if (socket === this._socket) this._handshake(socket);
      };
      socket.onmessage = (event) => {
        if (socket === this._socket) this._receive(event.data);
      };
      socket.onclose = (event) => this._closed(socket, event.code, event.reason);
      // Browsers follow an error with a close; Node 20's WebSocket may not.
      socket.onerror = () => this._drop(socket, "the connection failed");
    }

    _socketUrl() {
      const base = this.options.url.replace(/^http/, "ws").replace(/\/+$/, "");
      // Same-origin pages send the fingerprint cookie with the upgrade anyway; this carries it
      // to another origin too, when the cookie is readable (PROTOCOL.md section 4).
      const key = this.options.cookieKey;
      const session = readCookie(key);
      const query = session ? "?" + encodeURIComponent(key) + "=" + encodeURIComponent(session) : "";
      return base + this.options.pathname + query;
    }

    /** The socket is open: learn who we are, re-join rooms, then flush the queue. */
    async _handshake(socket) {
      const reply = await this._ask({ event: "detailsView" });
      if (socket !== this._socket) return;
      if (reply.error) {
        this._drop(socket, reply.error);
        return;
      }
      this._detailsReply = reply;
      this.details = reply.data;
      this.id = reply.data.id;
      this.fingerprint = reply.data.fingerprint;

      const rooms = this.rooms.concat(this._lostRooms);
      const joins = await Promise.all(rooms.map((room) => this._rejoin(room)));
      if (socket !== this._socket) return;
      this.rooms = [];
      this._lostRooms = [];
      this._rejoinAttempt = 0;
      const failed = [];
      rooms.forEach((room, index) => {
        if (!this._rejoined(room, joins[index])) failed.push([room, joins[index]]);
      });

      clearTimeout(this._attemptTimer);
      const reconnected = this._wasUp;
      this._wasUp = true;
      this._attempt = 0;
      this.state = "connected";
      const queued = this._queue;
      this._queue = [];
      queued.forEach(([frame, settle]) => this._transmit(frame, settle));
      this._startHeartbeat(socket);

      this._emit("connected");
      if (reconnected) this._emit("reconnect");
      rooms.forEach((room, index) => this._recovered(room, joins[index]));
      const waiters = this._waiters;
      this._waiters = [];
      waiters.forEach((callback) => callSafely(callback, [null, this._detailsReply]));
      this._rejoinsFailed(socket, failed);
    }

    /** A re-join's reply: true (and the room is back in `rooms`) when it worked. */
    _rejoined(room, reply) {
      if (reply.error) return false;
      if (!this.rooms.includes(room)) this.rooms.push(room);
      return true;
    }

    /**
     * Re-joins that failed, as [room, reply] pairs (say the server cannot tell whether the room
     * exists while its Redis is away): tell the page with an `error` event naming the room
     * (`error.room`; the reply is `error.frame`), and try again on the reconnect schedule
     * (`reconnect.min` doubling to `reconnect.max`, `reconnect.retries` times at most) for as
     * long as the connection lasts; the next connection re-joins them anyway.
     */
    _rejoinsFailed(socket, failed) {
      failed.forEach(([room, reply]) => {
        if (!this._lostRooms.includes(room)) this._lostRooms.push(room);
        const error = new Error("could not re-join room " + room + ": " + reply.error);
        error.room = room;
        error.frame = reply;
        this._emit("error", error);
      });
      if (!this._lostRooms.length) return;
      const { retries } = this.options.reconnect;
      if (retries != null && this._rejoinAttempt >= retries) {
        this._lostRooms = []; // given up: each failure was told as it came
        return;
      }
      const delay = backoff(this._rejoinAttempt, this.options.reconnect);
      this._rejoinAttempt += 1;
      this._rejoinTimer = setTimeout(() => this._retryRejoins(socket), delay);
    }

    async _retryRejoins(socket) {
      const rooms = this._lostRooms.slice();
      const joins = await Promise.all(rooms.map((room) => this._rejoin(room)));
      if (socket !== this._socket) return; // the next handshake re-joins what is still lost
      const failed = [];
      rooms.forEach((room, index) => {
        this._recovered(room, joins[index]);
        if (!this._lostRooms.includes(room)) return; // left meanwhile
        if (this._rejoined(room, joins[index])) {
          this._lostRooms = this._lostRooms.filter((lost) => lost !== room);
        } else {
          failed.push([room, joins[index]]);
        }
      });
      this._rejoinsFailed(socket, failed);
    }

    /**
     * Re-join a room after a reconnect. Where a message was seen before, ask for what came
     * after it (`since`, PROTOCOL.md section 9) and hold that room's messages until the reply
     * has been handled (`_recovered`), so that none comes before the ones it recovers.
     */
    _rejoin(room) {
      const frame = { event: "roomAdd", room: room };
      const position = this._positions.get(room);
      if (position) {
        frame.since = { offset: position.offset, epoch: position.epoch };
        this._held.set(room, []);
      }
      return this._ask(frame);
    }

    /**
     * Handle a re-join's reply: emit the messages it recovered as `say` events, oldest first,
     * then `recover` ({room, recovered, count}), then the messages held meanwhile; an offset
     * already emitted is never emitted again.
     */
    _recovered(room, reply) {
      if (!this._held.has(room)) return;
      const held = this._held.get(room);
      this._held.delete(room);
      const data = reply.data;
      if (!reply.error && data && Array.isArray(data.messages)) {
        const missed = data.messages.slice().sort((a, b) => a.offset - b.offset);
        const count = missed.filter((message) => this._deliverSay(message)).length;
        this._emit("recover", { room: room, recovered: data.recovered === true, count: count });
      }
      held.forEach((message) => this._deliverSay(message));
      if (reply.error || !data) return;
      if (typeof data.epoch === "string") this._saw(room, data);
      else if (data.epoch === null) this._positions.delete(room); // the room keeps no history now
    }

    /** Emit a `say`, unless its offset was emitted already; true when it was emitted. */
    _deliverSay(message) {
      if (typeof message.offset === "number" && typeof message.epoch === "string") {
        const last = this._positions.get(message.room);
        if (last && last.epoch === message.epoch && message.offset <= last.offset) return false;
        this._saw(message.room, message);
      }
      this._emit("say", message);
      return true;
    }

    /** Remember `{offset, epoch}` as the room's position, unless it is behind it. */
    _saw(room, { offset, epoch }) {
      const last = this._positions.get(room);
      if (last && last.epoch === epoch && last.offset >= offset) return;
      this._positions.set(room, { offset: offset, epoch: epoch });
    }

    /**
     * Every `ping` ms ask the server for a pong; a link with no reply within `pong` ms is dead
     * even if TCP has not noticed (a sleeping laptop, a dropped NAT mapping): drop it and
     * reconnect.
     */
    _startHeartbeat(socket) {
      const { ping, pong } = this.options;
      if (!ping) return;
      this._pingTimer = setInterval(() => {
        const deadline =
          pong && setTimeout(() => this._drop(socket, "no pong within " + pong + " ms"), pong);
        this._ask({ event: "ping" }).then(() => clearTimeout(deadline));
      }, ping);
    }

    /** Give up on a stuck or dead socket and carry on as if the server had closed it. */
    _drop(socket, reason) {
      if (socket !== this._socket) return;
      this._closed(socket, 1006, reason);
      socket.close(); // may fire error or close at once: ignored, the socket is not current
    }

    _closed(socket, code, reason) {
      if (socket !== this._socket) return;
      if (FINAL_CLOSE_CODES.includes(code)) {
        const error = new Error(reason || "the server closed the connection (" + code + ")");
        error.code = code;
        this._finish(error);
        return;
      }
      this._socket = null;
      this._stopTimers();
      // Held messages were never emitted nor remembered: the next re-join recovers them.
      this._held.clear();
      // Whatever was in flight may or may not have run; its reply is gone with the socket.
      const pending = this._pending;
      this._pending = new Map();
      pending.forEach((settle, id) => settle.resolve(errorReply("the connection was lost", id)));

      const wasConnected = this.state === "connected";
      this.state = "reconnecting";
      if (wasConnected) this._emit("disconnected");
      this._retry();
    }

    _retry() {
      const { retries } = this.options.reconnect;
      if (retries != null && this._attempt >= retries) {
        this._finish(new Error("gave up after " + this._attempt + " reconnection attempts"));
        return;
      }
      const delay = backoff(this._attempt, this.options.reconnect);
      this._attempt += 1;
      this._retryTimer = setTimeout(() => this._open(), delay);
      this._emit("reconnecting", { attempt: this._attempt, delay: delay });
    }

    /** Closed for good: fail everything that waits, and stay down until connect() again. */
    _finish(error) {
      const socket = this._socket;
      this._socket = null;
      this._stopTimers();
      this._held.clear();
      this.state = "disconnected";
      if (socket) socket.close(1000);

      const pending = this._pending;
      const queued = this._queue;
      const waiters = this._waiters;
      this._pending = new Map();
      this._queue = [];
      this._waiters = [];
      pending.forEach((settle) => settle.reject(error));
      queued.forEach(([, settle]) => settle.reject(error));
      waiters.forEach((callback) => callSafely(callback, [error]));
      this._emit("disconnected");
    }

    _stopTimers() {
      clearTimeout(this._attemptTimer);
      clearTimeout(this._retryTimer);
      clearInterval(this._pingTimer);
      clearTimeout(this._rejoinTimer);
    }

    // ----- frames -----------------------------------------------------------------------------

    /** Route one inbound frame: `message` first, then by context (PROTOCOL.md section 2.5). */
    _receive(data) {
      let message;
      try {
        message = JSON.parse(data);
      } catch (error) {
        this._emit("error", new Error("the server sent a frame that is not JSON: " + data));
        return;
      }
      this._emit("message", message);
      const context = message.context;
      if (context === "response") {
        const settle = this._pending.get(message.messageId);
        this._pending.delete(message.messageId);
        if (settle) settle.resolve(message);
      } else if (context === "user") {
        const held = this._held.get(message.room);
        if (held) held.push(message);
        else this._deliverSay(message);
      } else if (context === "presence" && PRESENCE_EVENTS.includes(message.event)) {
        this._emit(message.event, message);
      } else if (context === "alert") {
        this._emit("alert", message);
      } else if (context === "error") {
        const error = new Error(message.error);
        error.frame = message;
        this._emit("error", error);
      } else if (context === "api" && message.welcome !== undefined) {
        this.welcomeMessage = message.welcome;
        this._emit("welcome", message);
      } else {
        this._emit("api", message);
      }
    }

    /**
     * Turn a user's callback into a settle pair, or make a Promise when there is none. A
     * callback has no error channel, so "closed for good" reaches it as an error reply.
     */
    _settle(callback, messageId) {
      if (typeof callback === "function") {
        const settle = {
          resolve: (reply) => callSafely(callback, [reply]),
          reject: (error) => callSafely(callback, [errorReply(error.message, messageId)]),
        };
        return [settle, undefined];
      }
      let settle;
      const promise = new Promise((resolve, reject) => {
        settle = { resolve, reject };
      });
      return [settle, promise];
    }

    /** Send a verb now, or queue it while (re)connecting. `onReply` sees the reply first. */
    _request(frame, callback, onReply) {
      const messageId = ++this._messageId;
      frame.messageId = messageId;
      const [settle, promise] = this._settle(callback, messageId);
      if (onReply) {
        const resolve = settle.resolve;
        settle.resolve = (reply) => {
          onReply(reply);
          resolve(reply);
        };
      }
      const limit = this.options.queueSize;
      if (this.state === "connected") {
        this._transmit(frame, settle);
      } else if (this.state === "disconnected") {
        settle.reject(new Error("the client is disconnected"));
      } else if (limit != null && this._queue.length >= limit) {
        settle.resolve(errorReply("the send queue is full (" + limit + " frames)", messageId));
      } else {
        this._queue.push([frame, settle]);
      }
      return promise;
    }

    /** The client's own verbs (handshake, re-join, heartbeat): never queued, never rejected. */
    _ask(frame) {
      const messageId = ++this._messageId;
      frame.messageId = messageId;
      return new Promise((resolve) => {
        const reject = (error) => resolve(errorReply(error.message, messageId));
        this._transmit(frame, { resolve, reject });
      });
    }

    _transmit(frame, settle) {
      this._pending.set(frame.messageId, settle);
      this._socket.send(JSON.stringify(frame));
    }

    /** `action` while not connected: POST <url><apiPath>/<name>, JSON in and out. */
    _httpAction(name, params, settle) {
      const base = this.options.url.replace(/^ws/, "http").replace(/\/+$/, "");
      const url = base + this.options.apiPath + "/" + encodeURIComponent(name);
      fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(params),
        credentials: "include", // the fingerprint cookie links this request to the socket
      })
        .then((response) =>
          response.json().catch(() => errorReply("HTTP " + response.status + ", not JSON")),
        )
        .catch((error) => errorReply(error.message))
        .then(settle.resolve);
    }

    // ----- verbs ------------------------------------------------------------------------------

    /** Run an action: over the socket when connected, else over HTTP. */
    action(name, params, callback) {
      if (typeof params === "function") {
        callback = params;
        params = {};
      }
      params = Object.assign({}, params);
      if (this.state !== "connected") {
        const [settle, promise] = this._settle(callback, null);
        this._httpAction(name, params, settle);
        return promise;
      }
      params.action = name;
      return this._request({ event: "action", params: params }, callback);
    }

    say(room, message, callback) {
      return this._request({ event: "say", room: room, message: message }, callback);
    }

    file(path, callback) {
      return this._request({ event: "file", file: path }, callback);
    }

    detailsView(callback) {
      return this._request({ event: "detailsView" }, callback);
    }

    roomView(room, callback) {
      return this._request({ event: "roomView", room: room }, callback);
    }

    /** Join a room; once the server agrees it is in `client.rooms`, re-joined on reconnect. */
    roomAdd(room, callback) {
      return this._request({ event: "roomAdd", room: room }, callback, (reply) => {
        if (reply.error) return;
        if (!this.rooms.includes(room)) this.rooms.push(room);
        this._lostRooms = this._lostRooms.filter((lost) => lost !== room);
      });
    }

    /** Leave a room; a room whose re-join failed is not tried again either. */
    roomLeave(room, callback) {
      this._lostRooms = this._lostRooms.filter((lost) => lost !== room);
      return this._request({ event: "roomLeave", room: room }, callback, (reply) => {
        if (reply.error) return;
        this.rooms = this.rooms.filter((joined) => joined !== room);
        this._positions.delete(room); // joined again later, it starts afresh
      });
    }

    /**
     * The room's last `limit` kept messages (default and at most its history size), oldest
     * first: `reply.data` is {room, epoch, offset, messages}. In a room where no message has
     * been seen yet, the reply's offset is where a recovery after a reconnect starts from.
     */
    roomHistory(room, limit, callback) {
      if (typeof limit === "function") {
        callback = limit;
        limit = undefined;
      }
      const frame = { event: "roomHistory", room: room };
      if (limit != null) frame.limit = limit;
      return this._request(frame, callback, (reply) => {
        const data = reply.data;
        if (reply.error || !data || typeof data.epoch !== "string") return;
        if (!this._positions.has(room) && this.rooms.includes(room)) this._saw(room, data);
      });
    }

    documentation(callback) {
      return this._request({ event: "documentation" }, callback);
    }
  }

  if (typeof module === "object" && module.exports) {
    module.exports = ActionheroClient;
  } else {
    root.ActionheroClient = ActionheroClient;
  }
})(globalThis);
