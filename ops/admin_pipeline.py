"""Staff page with the local pipeline's figures: ``/admin/pipeline/``.

The event-source runner (``processors.local.runner``) writes its figures every few seconds to
``ALLEYCAT_PIPELINE_STATUS_FILE``; this page shows them per source: iterator age (lag),
records/s, errors and dead letters, plus the dead-letter queue's size. On AWS the same figures
are CloudWatch metrics (IteratorAge, Errors, the queue's ApproximateNumberOfMessagesVisible).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

STALE_AFTER_SECONDS = 20


def pipeline_status_read() -> dict[str, Any] | None:
    """The runner's last status (``sources``, ``deadLetterQueue``...) plus ``ageSeconds``; None if never written."""
    try:
        status = json.loads(settings.ALLEYCAT_PIPELINE_STATUS_FILE.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    try:
        updated = datetime.fromisoformat(status["updatedAt"].replace("Z", "+00:00")).timestamp()
        status["ageSeconds"] = max(0, int(time.time() - updated))
    except (KeyError, ValueError):
        status["ageSeconds"] = None
    age = status["ageSeconds"]
    status["stale"] = not status.get("running", False) or age is None or age > STALE_AFTER_SECONDS
    return status


@staff_member_required
def pipeline_status_view(request: HttpRequest) -> HttpResponse:
    status = pipeline_status_read()
    if request.GET.get("format") == "json":
        return JsonResponse(status or {}, status=200 if status else 404)
    context = {
        **admin.site.each_context(request),
        "title": "Pipeline",
        "status": status,
        "status_file": settings.ALLEYCAT_PIPELINE_STATUS_FILE,
    }
    return render(request, "admin/pipeline.html", context)
