// The generated client under Node, reporting what a page would see, one JSON object a line:
// node rejoin_client.js <client.js> <server url> <room>
// {"event": "joined" | "reconnect" | "error" | "say" | "rooms", ...}; exits when stdin closes.
"use strict";

const [clientPath, url, room] = process.argv.slice(2);
const ActionheroClient = require(clientPath);

function report(event, fields) {
  console.log(JSON.stringify(Object.assign({ event }, fields)));
}

async function main() {
  const client = new ActionheroClient({ url, reconnect: { min: 50, max: 200 } });
  client.on("error", (error) => report("error", { room: error.room, message: error.message }));
  client.on("reconnect", () => report("reconnect", { rooms: client.rooms }));
  client.on("say", (message) => report("say", { room: message.room, message: message.message }));
  await client.connect();
  const reply = await client.roomAdd(room);
  report("joined", { reply: reply.status, rooms: client.rooms });
  // client.rooms has no event of its own: report its changes as they are seen
  let rooms = JSON.stringify(client.rooms);
  const watch = setInterval(() => {
    if (JSON.stringify(client.rooms) !== rooms) {
      rooms = JSON.stringify(client.rooms);
      report("rooms", { rooms: client.rooms });
    }
  }, 20);
  process.stdin.resume();
  process.stdin.on("end", () => {
    clearInterval(watch);
    client.disconnect();
  });
}

main();
