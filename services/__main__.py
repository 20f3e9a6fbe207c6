"""Every store's schema to its newest revision, one after another: each domain service's event
store and relay position, the read model, the audit log (docs/operations.md, "Starting").

    python -m services migrate

The one migrate step of `make run`, `make bench`, `make chaos` and compose's `migrate` job. Each
service's own `python -m services.<name> migrate` runs in its own process, with that service's
settings, so this is exactly what running them by hand does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

#: Every service with a store, in the order their schemas are created.
STORES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "municipal",
    "correspondence",
    "streams",
    "pathway",
    "audit",
)


def migrate_all() -> None:
    for service in STORES:
        done = subprocess.run([sys.executable, "-m", f"services.{service}", "migrate"])
        if done.returncode != 0:
            sys.exit(f"carepath: migrating {service} failed (exit {done.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services")
    parser.add_argument("command", choices=["migrate"])
    parser.parse_args()
    migrate_all()


if __name__ == "__main__":
    main()
