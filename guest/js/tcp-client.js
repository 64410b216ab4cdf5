// `tcp-client ADDR MESSAGE`: connects to `ADDR` (`IP:PORT` or `[IPV6]:PORT`), sends `MESSAGE`,
// shuts down its sending side, and prints everything that comes back until the peer closes.
//
// A failure prints one line `error: OPERATION ADDR: CODE` to stderr, where `CODE` is the WIT
// `error-code` (`error: connect 127.0.0.1:9: access-denied`), and exits 1. The operations are
// `create-tcp-socket`, `connect`, `write`, `shutdown` and `read`.

import instanceNetwork from "wasi:sockets/instance-network@0.2.12";
import tcpCreateSocket from "wasi:sockets/tcp-create-socket@0.2.12";
import * as guest from "./capnet-guest.js";

const USAGE = "tcp-client ADDR MESSAGE";

function main() {
  const argv = guest.args();
  if (argv.length !== 2) guest.usage(USAGE, "expected two arguments");
  const [text, message] = argv;
  const target = guest.parseAddr(text);
  if (!target) guest.usage(USAGE, `ADDR "${text}" is not IP:PORT or [IPV6]:PORT`);

  const network = guest.keepAlive(instanceNetwork.instanceNetwork());
  let socket;
  try {
    socket = guest.keepAlive(tcpCreateSocket.createTcpSocket(target.family));
  } catch (e) {
    guest.fail("create-tcp-socket", text, e);
  }
  const ready = guest.keepAlive(socket.subscribe());
  let input, output;
  try {
    socket.startConnect(network, target.addr);
    [input, output] = guest.blockOn(ready, () => socket.finishConnect());
  } catch (e) {
    guest.fail("connect", text, e);
  }
  guest.keepAlive(input);
  guest.keepAlive(output);
  try {
    guest.writeAll(output, guest.utf8(message));
  } catch (e) {
    guest.fail("write", text, e);
  }
  try {
    socket.shutdown("send");
  } catch (e) {
    guest.fail("shutdown", text, e);
  }
  for (;;) {
    let bytes;
    try {
      bytes = input.blockingRead(65536);
    } catch (e) {
      if (guest.isClosed(e)) break;
      guest.fail("read", text, e);
    }
    guest.print(bytes);
  }
}

export const run = {
  run() {
    guest.runMain(main);
  },
};
