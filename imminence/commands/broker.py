"""`imminence broker`: run the embedded Kafka-protocol broker (tansu) in the foreground.

Prints the bootstrap address (alone, on stdout) once the broker listens, and
stops it cleanly on SIGINT or SIGTERM.  Clients connect through a small
protocol shim on that port (``streamer.kafka_shim``), so librdkafka clients
such as kcat work too.  Memory storage by default: a restart
empties it.  For a broker whose data outlives restarts use ``--storage
s3://BUCKET/`` with the ``AWS_*`` variables of an S3 server in the environment.

    imminence broker --port 9092
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from imminence.errors import USAGE, CommandError
from streamer.broker import BrokerError, EmbeddedBroker
from streamer.redact import mask_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("broker", help="run the embedded Kafka-protocol broker (tansu) on loopback",
                              description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    p.add_argument("--storage", default="memory://tansu/",
                   help="tansu storage engine URL (default memory://tansu/, emptied on restart)")
    p.add_argument("--log-file", default=None, help="append the broker's own log here (default: discarded)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a port number (0-65535)", code=USAGE)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(port=args.port or None, host=args.host, storage=args.storage, log_file=args.log_file)
    try:
        try:
            broker.start()
        except BrokerError as exc:
            raise CommandError(mask_url(str(exc))) from exc
        print(broker.bootstrap, flush=True)
        print(f"imminence broker: tansu listening on {broker.bootstrap} (storage {mask_url(args.storage)}); "
              "Ctrl-C or SIGTERM stops it", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                raise CommandError("the broker process exited unexpectedly (see --log-file for its output)")
        print("imminence broker: stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        broker.stop()
        for s, h in previous.items():
            signal.signal(s, h)
