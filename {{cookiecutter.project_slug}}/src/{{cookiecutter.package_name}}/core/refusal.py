"""How the service refuses a configuration, and how it shows a URL: without its password.

Every configuration problem, found at import, at worker start or by a command, ends in
``refuse``: all problems at once, one line each (``SETTING=value: rule``), no traceback, exit 78.
"""

import sys
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import parse_qsl, urlencode

#: Exit status of a process refused for its configuration (EX_CONFIG, sysexits.h).
EXIT_STATUS = 78
MASK = "***"
#: A query parameter whose name holds one of these carries a secret (``?password=`` works in
#: redis-py and libpq URLs).
SECRET_PARAMETERS = ("password", "passwd", "secret", "token")


def refuse(problems: Sequence[str]) -> NoReturn:
    """Print every problem on stderr and exit with EX_CONFIG, without a traceback."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = "".join(f"\n  - {problem}" for problem in problems)
    print(f"refusing to start, the configuration has {count}:{lines}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_STATUS)


def shown_url(raw: str) -> str:
    """``raw`` as it may appear in a message: every password hidden, whatever the scheme.

    Covers failover lists (``amqp://a;amqp://b``), passwords in the query and text that is no
    URL at all; when unsure it hides too much rather than too little.
    """
    # kombu splits a failover list at ";"; a piece without a scheme is part of its neighbour
    # (a ";" in a password), so it is hidden with it.
    parts: list[str] = []
    for piece in raw.split(";"):
        if parts and "://" not in piece:
            parts[-1] += ";" + piece
        else:
            parts.append(piece)
    return ";".join(_shown_part(part) for part in parts)


def _shown_part(part: str) -> str:
    scheme, separator, rest = part.partition("://")
    if not separator:
        scheme, rest = "", part
    # Userinfo ends at the last "@": an unescaped "@" in a password must not end it early.
    # A rest that starts with "/" has no authority (sqlite:///file, unix:///socket).
    at = -1 if rest.startswith("/") else rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if any(mark in user for mark in "/?#"):
            # Not a user name: the "@" is in a path or query, or the URL is broken. Hide it all.
            userinfo = MASK
        else:
            userinfo = f"{user}:{MASK}" if colon else user
        rest = f"{userinfo}@{rest[at + 1 :]}"
    head, question, query = rest.partition("?")
    if question:
        pairs = [
            (name, MASK if any(word in name.lower() for word in SECRET_PARAMETERS) else value)
            for name, value in parse_qsl(query, keep_blank_values=True)
        ]
        rest = f"{head}?{urlencode(pairs, safe='*/:')}"
    return f"{scheme}{separator}{rest}"
