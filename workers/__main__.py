import argparse
import asyncio
import logging
import os
import sys

from dirhook.config import Settings
from workers import QUEUES, run_workers


def main() -> None:
    parser = argparse.ArgumentParser(description="dirhook worker")
    parser.add_argument("--queues", default=",".join(QUEUES), help="comma-separated: sync,delivery")
    args = parser.parse_args()
    settings = Settings()
    from dirhook.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_workers(settings, [q.strip() for q in args.queues.split(",") if q.strip()]))
    # Everything is shut down and flushed: leave without interpreter finalization, where the
    # Temporal SDK's native threads sometimes abort the process after a clean stop
    # ("PyGILState_Release", sdk-python issue #300) and write a fatal error into the log.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
