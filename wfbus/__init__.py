"""wfbus: publish and replay workflow events through SQS, Kafka, RabbitMQ and a local broker."""

__version__ = "0.1.0"
