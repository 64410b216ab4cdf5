// `js-nano-app STEP...`: the nano-process example's app in JavaScript. Each STEP is
// `weather=ADDR` (the weather library it is composed with fetches from ADDR) or `app=ADDR` (the
// app fetches from ADDR itself, ./fetch-once.js), run in order, each reported on one stdout
// line: `STEP: ok REPLY` or `STEP: error ERROR`. Composed with a library of another language by
// `capnet compose`, each side's sockets are decided by its own grant.

import weather from "capnet:example/weather@0.1.0";
import * as guest from "../capnet-guest.js";
import { fetch } from "./fetch-once.js";

const USAGE = "js-nano-app (weather|app)=ADDR...";

function main() {
  for (const step of guest.args()) {
    const at = step.indexOf("=");
    const who = step.slice(0, at);
    const addr = step.slice(at + 1);
    if (at < 0 || (who !== "weather" && who !== "app")) {
      guest.usage(USAGE, `step "${step}" is not weather=ADDR or app=ADDR`);
    }
    let line;
    try {
      const reply = who === "weather" ? weather.fetch(addr) : fetch(addr);
      line = `${step}: ok ${reply.trimEnd()}`;
    } catch (e) {
      line = `${step}: error ${guest.witError(e)}`;
    }
    guest.print(`${line}\n`);
  }
}

export const run = {
  run() {
    guest.runMain(main);
  },
};
