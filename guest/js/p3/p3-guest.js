// What the capnet JavaScript 0.3 guests add to `../capnet-guest.js` (command line, addresses,
// output through WASI 0.2's `wasi:cli`, the report `error: OPERATION ADDR: CODE`): the async
// entry point and the outcome of a `future<result<_, error-code>>`.

import { Exit, printError } from "../capnet-guest.js";

/** Runs the async `main` as the body of `wasi:cli/run@0.3.0`: `fail` and `usage` (an `Exit`)
 * make `run` reject, which is its failed exit; anything else is reported first. */
export async function runMain(main) {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof Exit)) printError(`error: ${e}\n${(e && e.stack) || ""}\n`);
    throw e;
  }
}

/** The `error-code` a `future<result<_, error-code>>` settles with, or `null`. The future is
 * dropped once read: componentize-qjs keeps a read future's handle until `drop()`, and a
 * server that left them grew by about 1.3 KB a connection. */
export async function settled(future) {
  const result = await future.read();
  future.drop();
  return result && result.tag === "err" ? result.val : null;
}

/** Prints `error: PROBLEM` to stderr and ends the program with failure. */
export function report(problem) {
  printError(`error: ${problem}\n`);
  throw new Exit(false);
}
