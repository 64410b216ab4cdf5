// `tcp-client ADDR MESSAGE` for `wasi:sockets@0.3.0`: connects to ADDR, sends MESSAGE through
// a `stream<u8>`, ends it, and prints everything the peer sends back until it ends.
//
// The program is the component's `wasi:cli/run@0.3.0`, an async function. A failure prints
// `error: OPERATION ADDR: CODE` (`error: connect 127.0.0.1:9: access-denied`) and exits 1; the
// operations are `create`, `connect`, `send` and `receive`.

import types from "wasi:sockets/types@0.3.0";
import * as guest from "../capnet-guest.js";
import { report, runMain, settled } from "./p3-guest.js";

const USAGE = "tcp-client ADDR MESSAGE";

async function main() {
  const argv = guest.args();
  if (argv.length !== 2) guest.usage(USAGE, "expected two arguments");
  const [text, message] = argv;
  const target = guest.parseAddr(text);
  if (!target) guest.usage(USAGE, `ADDR "${text}" is not IP:PORT or [IPV6]:PORT`);

  let socket;
  try {
    socket = types.TcpSocket.create(target.family);
  } catch (e) {
    guest.fail("create", text, e);
  }
  try {
    await socket.connect(target.addr);
  } catch (e) {
    guest.fail("connect", text, e);
  }
  const { readable: outgoing, writable: toPeer } = wit.Stream(wit.Stream.U8);
  const sent = socket.send(outgoing);
  const [fromPeer, received] = socket.receive();
  const bytes = guest.utf8(message);
  const delivered = await toPeer.writeAll(bytes);
  toPeer.drop();
  if (delivered < bytes.length) report(`send ${text}: the stream closed`);
  const sendError = await settled(sent);
  if (sendError !== null) guest.fail("send", text, sendError);
  const reply = [];
  for await (const chunk of fromPeer) reply.push(chunk);
  const receiveError = await settled(received);
  if (receiveError !== null) guest.fail("receive", text, receiveError);
  socket[Symbol.dispose]();
  for (const chunk of reply) guest.print(chunk);
}

export const run = {
  async run() {
    await runMain(main);
  },
};
