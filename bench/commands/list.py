"""``softmax-bench list``: every backend, its library, devices, dtypes, ops, and whether it runs here."""

from __future__ import annotations

import argparse
import json

from ..core.selection import choose
from . import options

HELP = "list every backend and whether it can run here"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="only these backends")
    p.add_argument("--format", choices=("table", "json"), default="table")
    options.add_plugin(p)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    registry = options.registry(args)
    entries = []
    for name in choose(args.backend, registry.names(), "backend"):
        b = registry.get(name)
        entries.append({
            "name": name, "library": b.library, "devices": list(b.devices), "dtypes": list(b.dtypes),
            "ops": list(b.ops), "parallel": b.parallel, "description": b.description, "origin": b.origin,
            "unavailable": {device: registry.unavailable(name, device) for device in b.devices},
        })
    if args.format == "json":
        print(json.dumps(entries, indent=1))
        return 0
    rows = []
    for e in entries:
        status = "; ".join(f"{d}: {'yes' if why is None else 'no, ' + why}" for d, why in e["unavailable"].items())
        rows.append([e["name"], e["library"], ",".join(e["devices"]), ",".join(e["dtypes"]), ",".join(e["ops"]),
                     e["parallel"] or "-", status])
    print(tabulate(rows, headers=["backend", "library", "devices", "dtypes", "ops", "parallel", "available"], tablefmt="simple"))
    return 0
