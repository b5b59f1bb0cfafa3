"""Broker URLs: kombu's failover lists, and how a URL may be shown without its password."""

from kombu.utils.url import maybe_sanitize_url


def broker_urls(raw: str) -> list[str]:
    """The URLs of CELERY_BROKER_URL: one, or kombu's failover list ``amqp://a;amqp://b``."""
    return [url.strip() for url in raw.split(";") if url.strip()]


def shown_broker_url(raw: str) -> str:
    """CELERY_BROKER_URL as it may appear in a message: every password hidden.

    kombu's ``maybe_sanitize_url`` masks only the first URL of a failover list.
    """
    return ";".join(maybe_sanitize_url(url) for url in broker_urls(raw))
