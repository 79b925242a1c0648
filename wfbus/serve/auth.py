"""Bearer tokens, compared in constant time (hmac.compare_digest), every configured
token every time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


class BearerAuth:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def allows(self, authorization: str | None) -> bool:
        """True for `Authorization: Bearer <a configured token>` (or when no
        token is configured)."""
        if not self._tokens:
            return True
        if not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # the server decodes header bytes as latin-1: encode them back to get the bytes the client
        # sent (a UTF-8 token's bytes), compared with the configured token's UTF-8 bytes
        try:
            candidate = given.strip().encode("latin-1")
        except UnicodeEncodeError:
            candidate = given.strip().encode()
        found = False
        for (
            token
        ) in self._tokens:  # no early exit: the time taken does not say which token nearly matched
            found |= hmac.compare_digest(candidate, token)
        return found
