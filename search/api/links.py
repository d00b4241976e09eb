"""Signed media links: a browser may fetch one item's file for a while without holding an API key.

A web page (the Streamlit UI, a shop front) that holds the key on its server can hand the browser
a link instead of relaying the file itself: the browser then streams videos straight from the API,
with Range requests. The link names the item and an expiry time and carries an HMAC-SHA256 of both
(RFC 2104) under a secret every replica shares: ``GLIMPSE_MEDIA_LINK_SECRET``, or one derived from
the configured API keys. Without API keys media needs no key, and links are plain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from glimpse.core.settings import Settings

_DOMAIN = b"glimpse media link v1\0"


def link_secret(settings: Settings) -> bytes | None:
    """The signing key, or None when the API needs no key (then media needs no link either)."""
    if settings.media_link_secret is not None:
        return hashlib.sha256(_DOMAIN + settings.media_link_secret.get_secret_value().encode()).digest()
    if not settings.api_keys:
        return None
    # Every replica configured with the same keys derives the same secret; changing the keys
    # revokes the links signed with the old ones.
    return hashlib.sha256(_DOMAIN + "\0".join(sorted(settings.api_keys)).encode()).digest()


def sign(secret: bytes, item_id: int, expires: int) -> str:
    """The token for ``item_id`` until ``expires`` (Unix seconds): base64url HMAC-SHA256."""
    mac = hmac.new(secret, f"{item_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify(secret: bytes, item_id: int, expires: int, token: str, now: float | None = None) -> bool:
    """Whether ``token`` was signed for this item and has not expired (constant-time compare)."""
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(sign(secret, item_id, expires).encode(), token.encode())
