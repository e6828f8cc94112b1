"""The client's address, by one rule for the API throttle and the login throttle (django-axes).

``ALLEYCAT_NUM_PROXIES`` is the number of proxies in front of the site that append to X-Forwarded-For
(0 by default: the peer address is the client, and X-Forwarded-For, which anyone can send, is ignored —
a random value per request must not buy a fresh throttle budget). Behind one load balancer it is 1:
the last address in X-Forwarded-For is the one the balancer saw.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    proxies = settings.ALLEYCAT_NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies == 0 or not forwarded:
        return remote_addr
    addresses = [part.strip() for part in forwarded.split(",")]
    return addresses[-min(proxies, len(addresses))] or remote_addr
