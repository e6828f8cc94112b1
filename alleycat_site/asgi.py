"""ASGI entry point: HTTP to Django, WebSocket to the Channels consumers."""

import os

from django.core.asgi import get_asgi_application

from alleycat_site import http_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")
# Initialise Django (apps, settings) before importing anything that touches models.
django_asgi_app = get_asgi_application()
http_limits.install()  # daphne: an over-long request line is answered 414, not dropped

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from leaderboards.connections import ConnectionLimitMiddleware
from leaderboards.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Outermost: it counts every socket per client address and sees daphne's own send callable.
        "websocket": ConnectionLimitMiddleware(AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns))),
    }
)
