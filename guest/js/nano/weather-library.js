// The nano-process example's weather library in JavaScript: `capnet:example/weather`'s `fetch`
// (./fetch-once.js), for a Rust (or any) app to import; a failure is the `err` of its result.
// Composed by `capnet compose`, its `instance-network` and `tcp-create-socket` imports are its
// own, labelled with its name, so every socket it opens is decided by its own grant.

import { fetch } from "./fetch-once.js";

export const weather = { fetch };
