"""Keeps secrets out of every diagnostic wfbus prints.

Config loading registers each secret value it sees (passwords in URLs, SASL passwords, AWS keys
taken from the environment); every diagnostic (error, hint, warning, traceback, a broker's target)
passes through `redact`, so even a driver's exception text that echoes a URL cannot leak one.

Event data is never redacted: a payload holding the word "guest" is data, and a peek backup or a
`--failed-out` file that changed it would publish an altered event when emitted again.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_secrets: set[str] = set()

_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def register(value: str | None) -> None:
    """Treat `value` as a secret from now on (too-short values would mask ordinary words)."""
    if value and len(value) >= 3:
        _secrets.add(value)


def reset() -> None:
    """Forget every secret: each CLI run (in tests, several share a process) learns its own."""
    _secrets.clear()


def register_environment() -> None:
    for name in _ENV_SECRETS:
        register(os.environ.get(name))


def redact(text: str) -> str:
    """Linear in the text: safe on a multi-megabyte driver message."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(r"\1" + MASK + "@", text)


# user:password@ right after any "scheme://", even a password we were never told about. Anchored on
# the literal "://" and with bounded user/password lengths, so each match attempt costs a constant:
# an unbounded `[scheme]*://` pattern retried at every position made an 80 KB token take 10 s.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]{0,256}:)[^@\s]{1,256}@")


def url_without_password(url: str) -> str:
    """The URL to show: user and host kept, password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
