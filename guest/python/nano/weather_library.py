"""The nano-process example's weather library in Python: `capnet:example/weather`'s `fetch`,
for a Rust (or any) app to import. Composed by `capnet compose`, its `instance-network` and
`tcp-create-socket` imports are its own, labelled with its name, so every socket it opens is
decided by its own grant."""

from wit_world import exports

import fetch_once


class Weather(exports.Weather):
    def fetch(self, addr: str) -> str:
        return fetch_once.fetch(addr)
