// `echo-server ADDR [MAX_CONNS]`: a TCP echo server on the `wasi:sockets` imports.
//
// Binds and listens on `ADDR`, prints `listening on <actual local address>` (port 0 reports the
// port the host chose), then serves connections one at a time: every byte a client sends is
// written back until the client shuts down its sending side, and then the connection is closed.
// After `MAX_CONNS` connections it exits 0 (default: serve forever).
//
// A failure prints one line `error: OPERATION ADDR: CODE` to stderr, with the WIT `error-code`
// (`error: bind 127.0.0.1:0: access-denied`), and exits 1.

import instanceNetwork from "wasi:sockets/instance-network@0.2.12";
import tcpCreateSocket from "wasi:sockets/tcp-create-socket@0.2.12";
import * as guest from "./capnet-guest.js";

const USAGE = "echo-server ADDR [MAX_CONNS]";

function main() {
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

  const network = guest.keepAlive(instanceNetwork.instanceNetwork());
  let listener;
  try {
    listener = guest.keepAlive(tcpCreateSocket.createTcpSocket(target.family));
  } catch (e) {
    guest.fail("create-tcp-socket", text, e);
  }
  const ready = guest.keepAlive(listener.subscribe());
  try {
    listener.startBind(network, target.addr);
    guest.blockOn(ready, () => listener.finishBind());
  } catch (e) {
    guest.fail("bind", text, e);
  }
  try {
    listener.startListen();
    guest.blockOn(ready, () => listener.finishListen());
  } catch (e) {
    guest.fail("listen", text, e);
  }
  const local = guest.formatAddr(listener.localAddress());
  guest.print(`listening on ${local}\n`);

  for (let served = 0; maxConns === null || served < maxConns; served++) {
    let client, input, output;
    try {
      [client, input, output] = guest.blockOn(ready, () => listener.accept());
    } catch (e) {
      guest.fail("accept", local, e);
    }
    const peer = guest.formatAddr(client.remoteAddress());
    echo(input, output, peer);
    // Children before their parent: the streams go before the socket they came from.
    input[Symbol.dispose]();
    output[Symbol.dispose]();
    client[Symbol.dispose]();
  }
}

/** Writes back everything read from `input` until the peer closes its sending side. */
function echo(input, output, peer) {
  for (;;) {
    let bytes;
    try {
      bytes = input.blockingRead(65536);
    } catch (e) {
      if (guest.isClosed(e)) return;
      guest.fail("read", peer, e);
    }
    try {
      guest.writeAll(output, bytes);
    } catch (e) {
      guest.fail("write", peer, e);
    }
  }
}

export const run = {
  run() {
    guest.runMain(main);
  },
};
