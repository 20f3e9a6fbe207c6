"""`python -m services.audit migrate|verify`: the audit log's schema to the newest revision;
check the hash chain of every row and print each changed, removed or added row (exit 1).

The log is at `AUDIT_DATABASE_URL` (by default var/audit.sqlite).
"""

from __future__ import annotations

import argparse
import logging
import sys

from shared import config, sql
from shared.audit import log as audit
from shared.process import start_process

logger = logging.getLogger("audit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit")
    parser.add_argument("command", choices=["migrate", "verify"])
    args = parser.parse_args(argv)
    start_process(f"audit-{args.command}")
    engine = sql.engine(config.database_url("audit"))
    try:
        audit.migrate(engine)
        if args.command == "migrate":
            logger.info("audit log schema is current")
            return 0
        problems = audit.verify(engine)
    finally:
        engine.dispose()
    if problems:
        for problem in problems:
            print(f"audit log: {problem}")
        print(f"audit log: NOT intact ({len(problems)} problems)")
        return 1
    print("audit log: intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
