/*
 * The demo chat (chat.html): one room with presence and history (PROTOCOL.md sections 8 and 9),
 * through the generated client. Who is here comes from `join` and `leave` events, never from
 * polling; the room's recent history shows when the page opens; after a dropped connection the
 * client recovers what was missed and the page puts it in place, marked as recovered. A display
 * name is kept in the session (the setDisplayName action) and reaches the other members as the
 * join's `info`. Every text from the server goes through textContent, never innerHTML.
 */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ROOM = $("room").textContent;
  const LEFT_BECAUSE = {
    left: " left",
    disconnected: " lost their connection",
    destroyed: " left: the room was closed",
    "server lost": " was lost with their server",
  };

  const client = new ActionheroClient();
  const messages = $("messages");
  const input = $("text");
  const nameInput = $("name");

  const names = new Map(); // connection id -> display name, of everyone seen (authors too)
  const members = new Map(); // connection id -> joinedAt, of the room now
  const myIds = new Set(); // this page's connection ids (a new one per connection)
  const shown = new Map(); // "epoch offset" -> the element of a numbered message on the page
  let newest = null; // the numbered message shown with the highest offset: {epoch, offset}
  let presenceSeen = null; // join and leave frames that came while a roomView was on its way
  let reconnectNotice = null; // "Reconnected...": recovered messages go before it
  let lastLeave = null; // {id, name, item} of the last "left": a join of that id is a rename
  let joined = false; // from the page's own join on, members' joins and leaves are told
  let welcomed = false;
  let chosenName = null; // the name picked here: told again to a server that forgot it

  // ----- names and colours ------------------------------------------------------------------

  function guestName(id) {
    return "guest-" + String(id).slice(0, 6);
  }

  function nameOf(id) {
    return names.get(id) || guestName(id);
  }

  /** A stable colour per name, so a conversation is easy to follow. */
  function hue(text) {
    let hash = 0;
    for (const char of String(text)) hash = (hash * 31 + char.charCodeAt(0)) % 360;
    return hash;
  }

  /** Learn a member's name from its `info`; its messages on the page take it too. */
  function remember(member) {
    const name = member.info && member.info.name;
    if (typeof name !== "string" || names.get(member.id) === name) return;
    names.set(member.id, name);
    const selector = '.message:not(.mine)[data-from="' + CSS.escape(member.id) + '"]';
    for (const item of messages.querySelectorAll(selector)) {
      item.querySelector(".author").textContent = name;
      item.style.setProperty("--hue", hue(name));
    }
  }

  // ----- the message list -------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Insert `item` before `before` (or last), keeping the view at the bottom if it was there. */
  function place(item, before) {
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.insertBefore(item, before || null);
    if (atBottom) messages.scrollTop = messages.scrollHeight;
  }

  function notice(text, kind, before) {
    const item = element("li", "notice" + (kind ? " " + kind : ""), text);
    place(item, before);
    return item;
  }

  function timeOf(sentAt) {
    const date = new Date(sentAt || Date.now());
    const time = element("time");
    time.dateTime = date.toISOString();
    const today = date.toDateString() === new Date().toDateString();
    const format = { hour: "2-digit", minute: "2-digit" };
    if (!today) Object.assign(format, { day: "numeric", month: "short" });
    time.textContent = date.toLocaleString([], format);
    return time;
  }

  function messageItem(frame) {
    const mine = myIds.has(frame.from);
    const item = element("li", "message" + (mine ? " mine" : ""));
    item.dataset.from = frame.from;
    item.style.setProperty("--hue", hue(nameOf(frame.from)));
    if (typeof frame.offset === "number") item.dataset.offset = frame.offset;
    const meta = element("div", "meta");
    meta.append(element("span", "author", mine ? "you" : nameOf(frame.from)), timeOf(frame.sentAt));
    const message = frame.message;
    const text = typeof message === "string" ? message : JSON.stringify(message);
    item.append(meta, element("p", "text", text));
    return item;
  }

  function keyOf(frame) {
    return typeof frame.offset === "number" ? frame.epoch + " " + frame.offset : null;
  }

  /**
   * Show a message where its offset puts it: before the first message on the page with a higher
   * one, else before `fallback` (or last). A message already on the page is not shown again.
   */
  function showSay(frame, fallback) {
    const key = keyOf(frame);
    if (key && shown.has(key)) return null;
    let before = fallback;
    const latest = newest && newest.epoch === frame.epoch && frame.offset > newest.offset;
    if (key && newest && !latest) {
      let next = Infinity;
      for (const [otherKey, other] of shown) {
        const offset = Number(other.dataset.offset);
        if (otherKey.startsWith(frame.epoch + " ") && offset > frame.offset && offset < next) {
          next = offset;
          before = other;
        }
      }
    }
    const item = messageItem(frame);
    place(item, before);
    if (key) shown.set(key, item);
    if (key && (!newest || latest || newest.epoch !== frame.epoch)) newest = frame;
    return item;
  }

  /**
   * The room's kept messages (roomHistory), each in its place; the ones already on the page
   * (said while the history was on its way) stay as they are.
   */
  async function showHistory(anchor) {
    const reply = await client.roomHistory(ROOM);
    if (reply.error) return;
    const earlier = reply.data.messages.filter((frame) => !shown.has(keyOf(frame)));
    if (anchor && earlier.length) notice("Earlier in " + ROOM, "divider", anchor);
    earlier.forEach((frame) => showSay(frame, anchor));
  }

  // ----- members ----------------------------------------------------------------------------

  function renderMembers() {
    $("members").textContent = members.size;
    const list = $("member-list");
    const ids = [...members.keys()].sort((a, b) => {
      if (myIds.has(a) !== myIds.has(b)) return myIds.has(a) ? -1 : 1;
      return nameOf(a).localeCompare(nameOf(b));
    });
    list.replaceChildren(
      ...ids.map((id) => {
        const item = element("li", "member" + (myIds.has(id) ? " me" : ""));
        item.dataset.id = id;
        item.style.setProperty("--hue", hue(nameOf(id)));
        const name = nameOf(id);
        item.append(
          element("span", "avatar", name.slice(0, 1).toUpperCase()),
          element("span", "member-name", name),
        );
        if (myIds.has(id)) item.append(element("span", "badge", "you"));
        return item;
      }),
    );
  }

  function applyPresence(frame) {
    if (frame.event === "join") {
      remember(frame);
      members.set(frame.id, frame.joinedAt);
    } else {
      members.delete(frame.id);
    }
  }

  /**
   * Who is in the room, once, from roomView: on joining and after a reconnect. Presence frames
   * that come meanwhile are applied again over the answer, which may be older than they are.
   */
  async function syncMembers() {
    presenceSeen = [];
    const reply = await client.roomView(ROOM);
    const seen = presenceSeen;
    presenceSeen = null;
    if (reply.error) return;
    members.clear();
    for (const member of Object.values(reply.data.members)) {
      remember(member);
      members.set(member.id, member.joinedAt);
    }
    seen.forEach(applyPresence);
    renderMembers();
    showIdentity();
  }

  function onPresence(frame) {
    if (frame.room !== ROOM) return;
    if (presenceSeen) presenceSeen.push(frame);
    const before = nameOf(frame.id);
    applyPresence(frame);
    renderMembers();
    if (myIds.has(frame.id)) {
      if (frame.event === "join") ownJoin(frame);
      return;
    }
    if (!joined) return;
    if (frame.event === "leave") {
      const item = notice(before + (LEFT_BECAUSE[frame.reason] || " left"), "presence");
      lastLeave = frame.reason === "left" ? { id: frame.id, name: before, item } : null;
    } else if (lastLeave && lastLeave.id === frame.id) {
      lastLeave.item.textContent = lastLeave.name + " is now " + nameOf(frame.id);
      lastLeave = null;
    } else {
      notice(nameOf(frame.id) + " joined", "presence");
    }
  }

  // ----- this page --------------------------------------------------------------------------

  function showState() {
    $("state").dataset.state = client.state;
    $("state").textContent = client.state;
    $("send").disabled = client.state === "disconnected";
    document.body.dataset.state = client.state;
  }

  function showIdentity() {
    $("me").textContent = nameOf(client.id);
    $("fingerprint").textContent = client.fingerprint;
    nameInput.placeholder = guestName(client.id);
    if (names.has(client.id) && document.activeElement !== nameInput) {
      nameInput.value = names.get(client.id);
    }
  }

  /**
   * The page's own join: it shows the name the session holds. A session lost with the server's
   * memory (a restart without Redis) holds none: the name picked here is saved again.
   */
  function ownJoin(frame) {
    const name = frame.info && frame.info.name;
    if (name) chosenName = name;
    else if (chosenName) rename(chosenName);
    showIdentity();
  }

  async function join() {
    const reply = await client.roomAdd(ROOM);
    if (reply.error) {
      notice("Could not join " + ROOM + ": " + reply.error);
      return;
    }
    joined = true;
    const anchor = notice("You joined " + ROOM);
    await syncMembers(); // first, so that the history names the authors who are here
    await showHistory(anchor);
  }

  /**
   * Keep the name in the session, then join again: a member's name reaches the others with its
   * join (PROTOCOL.md section 8), so they see "guest-1a2b3c is now Ada".
   */
  async function rename(name) {
    const reply = await client.action("setDisplayName", { name });
    $("name-error").textContent = reply.error || "";
    if (reply.error) return;
    chosenName = reply.displayName;
    if (names.get(client.id) === reply.displayName) return;
    if (client.state !== "connected" || !client.rooms.includes(ROOM)) return; // the next join
    await client.roomLeave(ROOM);
    const again = await client.roomAdd(ROOM);
    if (again.error) {
      notice("Could not join " + ROOM + " again: " + again.error);
      return;
    }
    notice("You are now " + reply.displayName);
    await showHistory(null); // what was said while out of the room
  }

  client.on("welcome", (frame) => {
    if (!welcomed) notice(frame.welcome, "welcome"); // every new connection is welcomed again
    welcomed = true;
  });
  client.on("say", (frame) => {
    if (frame.room === ROOM) showSay(frame);
  });
  client.on("join", onPresence);
  client.on("leave", onPresence);
  client.on("recover", (recovery) => {
    if (recovery.room !== ROOM) return;
    // The recovered messages were the last to arrive: mark them, and say so after them.
    const all = messages.querySelectorAll(".message");
    const recovered = recovery.count ? [...all].slice(-recovery.count) : [];
    for (const item of recovered) {
      item.classList.add("recovered");
      item.querySelector(".meta").append(element("span", "tag", "recovered"));
    }
    const missed = recovery.count === 1 ? "1 missed message" : recovery.count + " missed messages";
    let text = recovery.count ? missed + " recovered" : "nothing missed";
    if (!recovery.recovered) text = "some messages may be missing (" + missed + " recovered)";
    const item = reconnectNotice || notice("");
    item.textContent = "Reconnected, back in " + ROOM + " · " + text;
    item.classList.toggle("warning", !recovery.recovered);
    place(item);
    reconnectNotice = null;
  });
  client.on("error", (error) => notice("Error: " + error.message, "warning"));
  for (const event of ["connected", "disconnected", "reconnecting"]) client.on(event, showState);
  client.on("disconnected", () =>
    notice(client.state === "reconnecting" ? "Connection lost, reconnecting…" : "Disconnected"),
  );
  client.on("reconnect", () => {
    myIds.add(client.id); // a new connection, a new id
    showIdentity();
    const back = client.rooms.includes(ROOM);
    reconnectNotice = notice(back ? "Reconnected, back in " + ROOM : "Reconnected");
    if (back) syncMembers();
  });

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    let reply;
    try {
      reply = await client.say(ROOM, text); // queued while reconnecting
    } catch (error) {
      reply = { error: error.message };
    }
    if (reply.error) {
      notice("Not sent: " + reply.error, "warning");
      if (!input.value) input.value = text;
    }
  });

  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (name) rename(name);
  });

  showState();
  client.connect((error) => {
    showState();
    if (error) {
      notice("Could not connect: " + error.message, "warning");
      return;
    }
    myIds.add(client.id);
    showIdentity();
    join();
  });
})();
