"""Registry service processes: `serve` (RegistryService and AccessService over gRPC), `relay`
(outbox → RabbitMQ), `migrate` (its tables, once; docs/operations.md) and `import FILE` (a
register extract, see importer.py).

python -m services.registry serve
python -m services.registry relay
python -m services.registry migrate
python -m services.registry import infra/demo-registry.json [--her-id 112374]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from services.bootstrap import REGISTRY
from services.registry.application import RegistryApplication
from services.registry.importer import ImportError_, import_facts, read_file
from shared.actors import Actor, OrgKind
from shared.ids import HerId
from shared.process import service_main

#: HER-id the bulk import records as the register adapter's (override with --her-id).
DEFAULT_ADAPTER_HER_ID = "112374"

log = logging.getLogger("registry.import")


def run_import(app: RegistryApplication, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.registry import")
    parser.add_argument("file", type=Path)
    parser.add_argument("--her-id", default=DEFAULT_ADAPTER_HER_ID, help="the adapter's HER-id")
    args = parser.parse_args(argv)
    try:
        facts = read_file(args.file)
    except ImportError_ as exc:
        sys.exit(f"registry import: nothing imported: {exc}")
    adapter = Actor(her_id=HerId.parse(args.her_id).value, org_kind=OrgKind.REGISTRY)
    try:
        recorded = import_facts(app, facts, adapter)
    except ImportError_ as exc:
        sys.exit(f"registry import: nothing imported: {exc}")
    log.info("imported %d facts from %s: %d new events", len(facts), args.file.name, recorded)
    app.close()


def main() -> None:
    service_main(REGISTRY, {"import": run_import})


if __name__ == "__main__":
    main()
