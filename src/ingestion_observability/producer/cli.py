"""`ingestion-producer`: validate run records and publish them to Kafka."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from ingestion_observability.event import InvalidRecord, normalise
from ingestion_observability.producer.generate import generate_records
from ingestion_observability.producer.publisher import Publisher
from ingestion_observability.producer.reader import InputError, Item, read_records
from ingestion_observability.producer.replay import Pacer, rebase_shift
from ingestion_observability.producer.settings import ProducerSettings
from ingestion_observability.sample import sample_logs_path
from ingestion_observability.settings import add_settings, from_args, setup_logging, zone

log = logging.getLogger("ingestion_observability.producer")

EXIT_UNDELIVERED = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestion-producer",
        description="Publish ingestion run records (JSON array or NDJSON) to Kafka as enriched events.",
    )
    add_settings(parser, ProducerSettings, helps={"topic": "topic to publish to"})
    parser.add_argument(
        "--rebase-time",
        action="store_true",
        help="shift every timestamp so that the newest run ends now",
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first invalid record (exit 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument("--generate", type=int, metavar="N", help="publish N generated records instead")
    parser.add_argument(
        "--output", type=Path, help="with --generate: write the raw records as NDJSON here, no Kafka"
    )
    return parser


def _newest_end(items: Iterator[Item], tz: tzinfo) -> datetime | None:
    newest: datetime | None = None
    for item in items:
        try:
            end = datetime.fromisoformat(normalise(item.record, tz)["fin"])
        except InvalidRecord:
            continue  # reported during the real pass
        newest = end if newest is None or end > newest else newest
    return newest


def _generated(count: int) -> Iterator[Item]:
    for index, record in enumerate(generate_records(count)):
        yield Item(f"generated {index}", record)


def _write_ndjson(count: int, output: Path) -> int:
    with output.open("wb") as out:
        for record in generate_records(count):
            out.write(orjson.dumps(record) + b"\n")
    print(f"{count} records written to {output}")
    return 0


def run(args: argparse.Namespace) -> int:
    settings = from_args(ProducerSettings, args)
    tz = zone(settings.timezone)
    source = settings.file or str(sample_logs_path())
    if args.generate is not None and args.output:
        return _write_ndjson(args.generate, args.output)

    def items(progress: tqdm[Any] | None = None) -> Iterator[Item]:
        if args.generate is not None:
            return _generated(args.generate)
        return read_records(source, progress.update if progress is not None else None)

    shift = timedelta(0)
    if args.rebase_time:
        if source == "-" and args.generate is None:
            log.error("--rebase-time reads the input twice: give a file, not stdin")
            return EXIT_BAD_INPUT
        newest = _newest_end(items(), tz)
        if newest is not None:
            shift = rebase_shift(newest)
            log.info("rebasing timestamps by %s", shift)

    show = not args.no_progress and sys.stderr.isatty()
    total = os.path.getsize(source) if show and args.generate is None and source != "-" else args.generate
    progress = tqdm(
        total=total, unit="B" if args.generate is None else "rec", unit_scale=True, disable=not show
    )
    pacer = Pacer(settings.speed) if settings.simulate_realtime else None
    publisher = Publisher(settings.bootstrap_servers, settings.topic, settings.delivery_timeout)
    invalid = 0
    try:
        for item in items(progress):
            if args.generate is not None:
                progress.update(1)
            try:
                if item.error:
                    raise InvalidRecord(item.error)
                event = normalise(item.record, tz, shift)
            except InvalidRecord as exc:
                invalid += 1
                log.warning("invalid record at %s of %s: %s", item.where, source, exc)
                if args.strict:
                    log.error("--strict: stopping at the first invalid record")
                    break
                continue
            if pacer:
                pacer.wait(datetime.fromisoformat(event["fin"]).timestamp())
            publisher.send(event)
    except InputError as exc:
        log.error("%s: %s", source, exc)
        invalid += 1
        args.strict = True  # the rest of the input is unreadable: that is fatal
    finally:
        progress.close()
        delivery = publisher.close()
    for reason in delivery.errors:
        log.error("delivery failed: %s", reason)
    print(f"{delivery.sent} sent, {invalid} invalid, {delivery.failed} failed")
    if delivery.failed:
        return EXIT_UNDELIVERED
    return EXIT_BAD_INPUT if args.strict and invalid else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.kafka_log_level)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
