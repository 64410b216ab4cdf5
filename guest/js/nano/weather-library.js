// The nano-process example's weather library in JavaScript: `capnet:example/weather`'s `fetch`
// (connect to `IP:PORT`, send `weather?`, shut down sending, return the whole reply), for a Rust
// (or any) app to import. A failure throws the WIT `error-code` (`access-denied`), which the
// app gets as the `err` of its result. Composed by `capnet compose`, its `instance-network` and
// `tcp-create-socket` imports are its own, labelled with its name, so every socket it opens is
// decided by its own grant.

import instanceNetwork from "wasi:sockets/instance-network@0.2.12";
import tcpCreateSocket from "wasi:sockets/tcp-create-socket@0.2.12";
import * as guest from "../capnet-guest.js";

function fetch(text) {
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

export const weather = { fetch };
