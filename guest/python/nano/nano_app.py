"""`python-nano-app STEP...`: the nano-process example's app in Python. Each STEP is
`weather=ADDR` (the weather library it is composed with fetches from ADDR) or `app=ADDR` (the app
fetches from ADDR itself), run in order, each reported on one stdout line: `STEP: ok REPLY` or
`STEP: error ERROR`. Composed with a library of another language by `capnet compose`, each
side's sockets are decided by its own grant."""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import weather

import capnet_guest as guest
import fetch_once

USAGE = "python-nano-app (weather|app)=ADDR..."


class Run(exports.Run):
    def run(self) -> None:
        for step in guest.args():
            who, sep, addr = step.partition("=")
            if not sep or who not in ("weather", "app"):
                guest.usage(USAGE, f"step {step!r} is not weather=ADDR or app=ADDR")
            try:
                reply = weather.fetch(addr) if who == "weather" else fetch_once.fetch(addr)
                line = f"{step}: ok {reply.rstrip()}"
            except Err as error:
                line = f"{step}: error {error.value}"
            print(line, flush=True)
        sys.stdout.flush()
