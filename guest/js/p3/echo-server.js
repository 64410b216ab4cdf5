// `echo-server ADDR [MAX_CONNS]` for `wasi:sockets@0.3.0`: listens on ADDR, prints
// `listening on <addr>`, and echoes every connection, all of them at once: each accepted
// socket's `receive` stream is written back into its `send` stream by an async function of its
// own. After MAX_CONNS connections it waits for them to end and exits 0 (default: forever).
//
// The program is the component's `wasi:cli/run@0.3.0`, an async function. A failure prints
// `error: OPERATION ADDR: CODE` (`error: bind 127.0.0.1:0: access-denied`) and exits 1.

import types from "wasi:sockets/types@0.3.0";
import * as guest from "../capnet-guest.js";
import { runMain, settled } from "./p3-guest.js";

const USAGE = "echo-server ADDR [MAX_CONNS]";

async function main() {
  const argv = guest.args();
  if (argv.length < 1 || argv.length > 2) {
    guest.usage(USAGE, "expected ADDR and an optional MAX_CONNS");
  }
  const text = argv[0];
  const target = guest.parseAddr(text);
  if (!target) guest.usage(USAGE, `ADDR "${text}" is not IP:PORT or [IPV6]:PORT`);
  let maxConns = null;
  if (argv.length === 2) {
    if (!/^\d+$/.test(argv[1])) guest.usage(USAGE, `MAX_CONNS "${argv[1]}" is not a number`);
    maxConns = Number(argv[1]);
  }

  let listener;
  try {
    listener = types.TcpSocket.create(target.family);
  } catch (e) {
    guest.fail("create", text, e);
  }
  try {
    listener.bind(target.addr);
  } catch (e) {
    guest.fail("bind", text, e);
  }
  let connections;
  try {
    connections = listener.listen();
  } catch (e) {
    guest.fail("listen", text, e);
  }
  let bound;
  try {
    bound = guest.formatAddr(listener.getLocalAddress());
  } catch (e) {
    guest.fail("local-address", text, e);
  }
  guest.print(`listening on ${bound}\n`);

  // The connections being served: one leaves the set when it ends, so a server that runs
  // forever does not keep one per connection it ever had.
  const serving = new Set();
  for (let count = 0; maxConns === null || count < maxConns; count++) {
    const accepted = await connections.read(1);
    if (accepted.length === 0) break;
    const serve = echo(accepted[0]).finally(() => serving.delete(serve));
    serving.add(serve);
  }
  await Promise.all(serving);
  connections.drop();
  listener[Symbol.dispose]();
}

/** Writes everything `client` sends back to it, until it ends its side; then drops the
 * streams and futures before the socket they came from. */
async function echo(client) {
  const [fromPeer, received] = client.receive();
  const { readable: outgoing, writable: toPeer } = wit.Stream(wit.Stream.U8);
  const sent = client.send(outgoing);
  for await (const chunk of fromPeer) {
    if ((await toPeer.writeAll(chunk)) < chunk.length) break;
  }
  toPeer.drop();
  await settled(sent);
  await settled(received);
  client[Symbol.dispose]();
}

export const run = {
  async run() {
    await runMain(main);
  },
};
