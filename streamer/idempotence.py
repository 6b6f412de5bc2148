"""Does the broker grant idempotent producers?  Asked once, before the producer is made.

An idempotent Kafka producer first asks a broker for a producer id
(InitProducerId); the broker then drops the duplicates that the producer's own
retries would otherwise write.  Apache Kafka grants one; the embedded tansu
0.6.0 answers with an error, and kafka-python's idempotent producer then never
sends anything.  :func:`probe` sends that one request itself and reports the
answer, so :class:`streamer.kafka_bus.KafkaBus` can use idempotence where it
works and fall back cleanly where it does not (``bus.idempotence: auto``).

Either way nothing is counted twice downstream: consumers drop repeats by event
id; idempotence only keeps the repeats off the topic.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from kafka import errors as kerrors
from kafka.client_async import KafkaClient
from kafka.protocol.init_producer_id import InitProducerIdRequest

log = logging.getLogger(__name__)


def probe(client_options: dict[str, Any], timeout_s: float = 5.0) -> tuple[Optional[bool], str]:
    """(granted, reason): ask a broker for a producer id with the bus's connection options.

    ``granted`` is None when no broker answered (ask again later), False when the
    broker refused or cannot grant one.
    """
    client = None
    try:
        client = KafkaClient(request_timeout_ms=int(timeout_s * 1000), **client_options)
        node = client.least_loaded_node()
        if node is None or not client.await_ready(node, timeout_ms=int(timeout_s * 1000)):
            return None, "no broker ready to ask for a producer id"
        try:
            version = client.api_version(InitProducerIdRequest, max_version=1)
        except kerrors.IncompatibleBrokerVersion:
            return False, "the broker does not support InitProducerId"
        request = InitProducerIdRequest[version](transactional_id=None, transaction_timeout_ms=60_000)
        response = client.send_and_receive(node, request)
        error = kerrors.for_code(response.error_code)
        if error is kerrors.NoError and response.producer_id >= 0:
            return True, f"the broker granted producer id {response.producer_id}"
        return False, f"the broker refused a producer id ({error.__name__})"
    except (kerrors.NoBrokersAvailable, kerrors.KafkaConnectionError, kerrors.KafkaTimeoutError,
            kerrors.RequestTimedOutError) as exc:
        return None, f"no broker answered ({type(exc).__name__})"
    except Exception as exc:  # any other failure of the probe means: do not rely on idempotence
        return False, f"producer id request failed ({type(exc).__name__}: {exc})"
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a half-open probe must not raise
                pass
