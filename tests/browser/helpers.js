// Page-side helpers for test_client.py and test_reconnect.py. Every wait is bounded by
// window.TIMEOUT (set by the test before this file loads), so a lost reply fails, never hangs.
"use strict";

const EVENTS = ["connected", "disconnected", "error", "reconnect", "reconnecting",
  "message", "alert", "api", "welcome", "say", "join", "leave", "recover"];

window.events = [];

/** Record every event of `client` in window.events as [name, argument]. */
window.track = (client) => {
  for (const name of EVENTS) {
    client.on(name, (arg) => {
      const value = arg instanceof Error ? { error: arg.message } : arg;
      events.push([name, value === undefined ? null : value]);
    });
  }
  return client;
};

window.names = () => events.map(([name]) => name);

window.within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
  setTimeout(() => reject(new Error("timed out waiting for " + what)), window.TIMEOUT))]);

/** The argument of the next `name` event. */
window.next = (client, name) => within(new Promise((resolve) => {
  const listener = (arg) => {
    client.off(name, listener);
    resolve(arg === undefined ? null : arg);
  };
  client.on(name, listener);
}), name);

/** Call a verb in callback style or promise style; either way, its reply. */
window.invoke = (style, client, verb, ...args) => within(style === "callback"
  ? new Promise((resolve) => client[verb](...args, resolve))
  : client[verb](...args), verb);

/** Record the frames the page's sockets send, in window.sent. */
window.recordSent = () => {
  window.sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    sent.push(JSON.parse(data));
    send.call(this, data);
  };
};
