// One fetch, the nano-process example's unit of work in JavaScript: connect to `IP:PORT`, send
// `weather?`, shut down sending, read the reply to its end, through this component's own
// `instance-network`. A failure throws the WIT `error-code` (`access-denied`) as a string.

import instanceNetwork from "wasi:sockets/instance-network@0.2.12";
import tcpCreateSocket from "wasi:sockets/tcp-create-socket@0.2.12";
import * as guest from "../capnet-guest.js";

export function fetch(text) {
  const target = guest.parseAddr(text);
  if (!target) throw `ADDR "${text}" is not IP:PORT or [IPV6]:PORT`;
  try {
    const network = guest.keepAlive(instanceNetwork.instanceNetwork());
    const socket = guest.keepAlive(tcpCreateSocket.createTcpSocket(target.family));
    const ready = guest.keepAlive(socket.subscribe());
    socket.startConnect(network, target.addr);
    const [input, output] = guest.blockOn(ready, () => socket.finishConnect());
    guest.keepAlive(input);
    guest.keepAlive(output);
    guest.writeAll(output, guest.utf8("weather?\n"));
    socket.shutdown("send");
    let reply = "";
    for (;;) {
      let bytes;
      try {
        bytes = input.blockingRead(65536);
      } catch (e) {
        if (guest.isClosed(e)) break;
        throw e;
      }
      reply += String.fromCharCode(...bytes);
    }
    return reply;
  } catch (e) {
    throw guest.codeName(e);
  }
}
