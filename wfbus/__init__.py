"""wfbus: publish and replay workflow events through SQS, Kafka, RabbitMQ and a local broker.

The command line is `wfbus` (wfbus.cli).  Scripts and notebooks use the same code path through
`wfbus.api` (`from wfbus import api`: `api.open_broker`, `api.emit`, `api.depth`, `api.peek`).
It lives in its own module because `wfbus.emit`, `wfbus.depth` and `wfbus.peek` are the core's
modules of those names, and importing nothing here keeps the CLI's start-up as lean as it is.
"""

__version__ = "0.1.0"
