import argparse
import asyncio

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


if __name__ == "__main__":
    main()
