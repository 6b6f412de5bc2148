"""`imminence subscribe`: print a topic's messages as JSON lines (one object per line, for jq).

    imminence subscribe indicators --bootstrap 127.0.0.1:9092 --from-beginning --max 10 | jq .camera_id

Each line is the message exactly as published (its ``schema`` field included);
``--meta`` wraps it as ``{"topic", "partition", "offset", "key", "timestamp_ms",
"value"}``.  Messages are validated first: an invalid one goes to
``imminence.dlq`` (a warning on stderr) and is not printed.  With ``--group`` the
offsets of printed messages are committed, so a second run continues where the
first stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from kafka.errors import KafkaError

from imminence.errors import USAGE, CommandError
from streamer import schemas
from streamer.config import BusConfig
from streamer.redact import mask_url
from streamer.subscribe import events, resolve_topic


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("subscribe", help="print a topic's messages as JSON lines",
                              description=__doc__.splitlines()[0])
    p.add_argument("topics", nargs="+", metavar="TOPIC",
                   help=f"topic name or short form: {', '.join(t.split('.', 1)[1] for t in schemas.TOPICS)}")
    p.add_argument("--bootstrap", default=None,
                   help="host:port of the broker (default: bus.bootstrap of --config, then $IMMINENCE_BOOTSTRAP)")
    p.add_argument("--config", default=None, help="YAML configuration whose 'bus' section to use")
    p.add_argument("--namespace", default=None, help="topic prefix (overrides bus.namespace)")
    p.add_argument("--group", default=None, help="consumer group (offsets committed); default: none, read alone")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the oldest message (a group with committed offsets continues from them)")
    p.add_argument("--max", type=int, default=None, metavar="N", help="exit after N messages")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                   help="exit after S seconds without a message (default: wait for ever)")
    p.add_argument("--meta", action="store_true", help="wrap each message with topic/partition/offset/key")
    p.add_argument("--no-dedup", action="store_true", help="print repeated event ids too")
    p.set_defaults(func=run)


def _bus_config(args: argparse.Namespace) -> BusConfig:
    cfg = BusConfig()
    if args.config:
        from imminence.config import load_config  # noqa: PLC0415 - only with --config

        cfg = load_config(args.config)[0].bus
    bootstrap = args.bootstrap or cfg.bootstrap or os.environ.get("IMMINENCE_BOOTSTRAP")
    update: dict = {"bootstrap": bootstrap}
    if args.namespace is not None:
        update["namespace"] = args.namespace
    return BusConfig.model_validate({**cfg.model_dump(), **update})


def run(args: argparse.Namespace) -> int:
    try:
        topics = [resolve_topic(t) for t in args.topics]
    except ValueError as exc:
        raise CommandError(str(exc), code=USAGE) from exc
    if args.max is not None and args.max <= 0:
        raise CommandError(f"--max must be positive, got {args.max}", code=USAGE)
    cfg = _bus_config(args)
    if not cfg.bootstrap:
        raise CommandError("no broker address: pass --bootstrap HOST:PORT, set bus.bootstrap in --config, "
                           "or set IMMINENCE_BOOTSTRAP (start one with `imminence broker`)", code=USAGE)

    kafka_log = logging.getLogger("kafka")
    kafka_level = kafka_log.level
    if logging.getLogger().level > logging.DEBUG:
        # kafka-python logs every refused connection at ERROR; this command reports a dead broker itself.
        kafka_log.setLevel(logging.CRITICAL)

    def _on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _on_term)
    out = sys.stdout
    try:
        for rec in events(topics, config=cfg, group=args.group, from_beginning=args.from_beginning,
                          max_events=args.max, idle_timeout=args.idle_timeout, dedup=not args.no_dedup):
            value = rec.event.model_dump(mode="json", by_alias=True)
            if args.meta:
                value = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "key": rec.key,
                         "timestamp_ms": rec.timestamp_ms, "value": value}
            out.write(json.dumps(value, ensure_ascii=False) + "\n")
            out.flush()
    except BrokenPipeError:  # `| head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 0
    except KafkaError as exc:
        raise CommandError(f"cannot read from the broker at {mask_url(cfg.bootstrap)}: "
                           f"{type(exc).__name__}: {mask_url(str(exc))}") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        kafka_log.setLevel(kafka_level)
    return 0
