// Drive the rendered client under Node: node node_client.js <client.js> <server url> <room>.
// Prints one JSON object of what happened; test_node_client.py asserts on it.
"use strict";

const [clientPath, url, room] = process.argv.slice(2);
const ActionheroClient = require(clientPath);

async function main() {
  // Node 20 has no global WebSocket (22 has): the client must take one as an option.
  const WebSocketClass = globalThis.WebSocket;
  delete globalThis.WebSocket;
  const out = {};
  try {
    new ActionheroClient({ url }).connect();
  } catch (error) {
    out.withoutWebSocket = error.message;
  }

  const client = new ActionheroClient({ url, WebSocket: WebSocketClass });
  out.overHttp = await client.action("echo", { via: "http" });
  out.details = await client.connect();
  out.welcomeMessage = client.welcomeMessage;
  out.roomAdd = await client.roomAdd(room);
  const said = new Promise((resolve) => client.on("say", resolve));
  out.sayReply = await client.say(room, "from node");
  out.say = await said;
  out.overSocket = await client.action("echo", { via: "socket" });
  client.disconnect();
  out.state = client.state;
  console.log(JSON.stringify(out));
}

main();
