"""Making the broker redeliver what a killed worker held, as it would on its own."""

from typing import Any

from kombu import Connection

from {{ cookiecutter.package_name }}.core import broker


def redeliver_unacknowledged(app: Any) -> None:
    """Hand the messages of a killed worker back to the queue.

    RabbitMQ does this itself when the worker's connection drops. Redis restores a message only
    once its visibility timeout has passed (minutes); this does the same restore now, through
    kombu's own code, with a visibility timeout of zero.
    """
    if broker.NAME != "redis":
        return
    with Connection(app.conf.broker_url, transport_options={"visibility_timeout": 0}) as connection:
        connection.default_channel.qos.restore_visible(num=1000)
