// What the capnet JavaScript guests share: the command line, `wasi:sockets` addresses, waiting
// on a pollable, output through `wasi:cli/stdout` and `stderr` (QuickJS here has no `console`
// and no `TextEncoder`), and the one-line error report `error: OPERATION ADDR: CODE`.
//
// A `result` error of an import is thrown as an `Error` whose `payload` is the WIT value: for
// `wasi:sockets` calls the `error-code` name (`"access-denied"`), for streams a `stream-error`
// variant (`{ tag: "closed" }`).

import environment from "wasi:cli/environment@0.2.12";
import exit from "wasi:cli/exit@0.2.12";
import stdout from "wasi:cli/stdout@0.2.12";
import stderr from "wasi:cli/stderr@0.2.12";

/** Raised by `fail` and `usage` to end the program after the report is written. */
export class Exit {
  constructor(ok) {
    this.ok = ok;
  }
}

// Everything that must outlive the call that made it: the QuickJS collector may otherwise
// drop a socket while its streams are still in use, which the host refuses (a trap).
const keep = [];

/** Keeps `resource` reachable until the program ends and returns it. */
export function keepAlive(resource) {
  keep.push(resource);
  return resource;
}

/** The guest's arguments after its name. */
export function args() {
  return environment.getArguments().slice(1);
}

/** `text` as UTF-8 bytes. */
export function utf8(text) {
  const binary = unescape(encodeURIComponent(text));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// Fetched on first use, never at module load: the module is evaluated at build time (Wizer
// snapshots it), and a handle taken then means nothing when the component runs.
let out = null;
let err = null;
function stdoutStream() {
  if (out === null) out = keepAlive(stdout.getStdout());
  return out;
}
function stderrStream() {
  if (err === null) err = keepAlive(stderr.getStderr());
  return err;
}

/** Writes `bytes` to `stream` in pieces `blocking-write-and-flush` takes (4096 bytes at most). */
export function writeAll(stream, bytes) {
  for (let start = 0; start < bytes.length; start += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(start, start + 4096));
  }
}

/** Prints `text` to stdout. */
export function print(bytes) {
  writeAll(stdoutStream(), typeof bytes === "string" ? utf8(bytes) : bytes);
}

/** The WIT error value an import threw (its `payload`), or what was thrown if it is not one. */
export function witError(thrown) {
  return thrown instanceof Error && "payload" in thrown ? thrown.payload : thrown;
}

/** Whether an import threw the `stream-error` that says the stream is closed. */
export function isClosed(thrown) {
  const error = witError(thrown);
  return error !== null && typeof error === "object" && error.tag === "closed";
}

/** The WIT name of what an import threw, or of a 0.3 `error-code` (a variant there). */
export function codeName(thrown) {
  const error = witError(thrown);
  if (typeof error === "string") return error;
  if (error && error.tag === "closed") return "closed";
  if (error && error.tag === "last-operation-failed") return error.val.toDebugString();
  if (error && error.tag === "other") return error.val == null ? "other" : `other(${error.val})`;
  if (error && typeof error.tag === "string") return error.tag;
  return String(error);
}

/** Prints `text` to stderr. */
export function printError(text) {
  writeAll(stderrStream(), utf8(text));
}

/** Prints `error: OPERATION ADDR: CAUSE` to stderr and ends the program with failure. */
export function fail(operation, addr, error) {
  printError(`error: ${operation} ${addr}: ${codeName(error)}\n`);
  throw new Exit(false);
}

/** Reports a bad command line and ends the program with failure. */
export function usage(text, problem) {
  writeAll(stderrStream(), utf8(`error: ${problem}\nusage: ${text}\n`));
  throw new Exit(false);
}

/** Runs `main`, turning an `Exit` into `wasi:cli/exit`. */
export function runMain(main) {
  try {
    main();
  } catch (e) {
    if (e instanceof Exit) {
      if (!e.ok) exit.exit({ tag: "err" });
      return;
    }
    writeAll(stderrStream(), utf8(`error: ${e}\n${(e && e.stack) || ""}\n`));
    exit.exit({ tag: "err" });
  }
}

/** `IP:PORT` or `[IPV6]:PORT` as `{ family, addr }` in `wasi:sockets` shape, or null. */
export function parseAddr(text) {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$/.exec(text);
  if (v4) {
    const address = v4.slice(1, 5).map(Number);
    const port = Number(v4[5]);
    if (address.some((b) => b > 255) || port > 65535) return null;
    return { family: "ipv4", addr: { tag: "ipv4", val: { port, address } } };
  }
  const v6 = /^\[([0-9a-fA-F:]+)\]:(\d+)$/.exec(text);
  if (v6) {
    const address = parseIpv6(v6[1]);
    const port = Number(v6[2]);
    if (!address || port > 65535) return null;
    return {
      family: "ipv6",
      addr: { tag: "ipv6", val: { port, flowInfo: 0, address, scopeId: 0 } },
    };
  }
  return null;
}

function parseIpv6(text) {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const part = (s) => (s === "" ? [] : s.split(":").map((h) => parseInt(h, 16)));
  const head = part(halves[0]);
  const tail = halves.length === 2 ? part(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const all = head.concat(new Array(fill).fill(0), tail);
  return all.some((n) => !(n >= 0 && n <= 0xffff)) ? null : all;
}

/** A `wasi:sockets` socket address as `IP:PORT` or `[IPV6]:PORT`. */
export function formatAddr(addr) {
  const { port, address } = addr.val;
  if (addr.tag === "ipv4") return `${address.join(".")}:${port}`;
  return `[${formatIpv6(address)}]:${port}`;
}

/** Eight u16 groups in RFC 5952 form: the longest run of two or more zero groups is `::`. */
function formatIpv6(groups) {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (part) => part.map((n) => n.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/** Calls `attempt` until it stops throwing `would-block`, waiting on `pollable` between tries. */
export function blockOn(pollable, attempt) {
  for (;;) {
    try {
      return attempt();
    } catch (e) {
      if (witError(e) !== "would-block") throw e;
    }
    pollable.block();
  }
}
