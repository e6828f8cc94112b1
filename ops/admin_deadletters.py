"""Staff page of the dead-letter queue: ``/admin/dead-letters/``.

Lists the bad records with their reason (and the batches an event source gave up on), counted by
reason, and lets staff put records that failed for a reason since fixed back on the stream
(redrive) or drop them (discard). The queue work is ``processors.deadletter_review`` (Django-free);
this module is the page.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from processors import deadletter_review as review
from processors.clients import aws_client
from processors.deadletter import dead_letter_queue_url

logger = logging.getLogger("alleycat.deadletters")

LIST_LIMIT = 500


@lru_cache(maxsize=1)
def _kinesis() -> Any:
    return boto3.client("kinesis", config=BotoConfig(retries={"mode": "standard", "max_attempts": 3}))


def _queue() -> tuple[Any, str]:
    return aws_client("sqs"), dead_letter_queue_url()


@staff_member_required
@require_http_methods(["GET", "POST"])
def dead_letters_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _act(request)
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Dead letters", "limit": LIST_LIMIT}
    try:
        sqs, url = _queue()
        letters = review.list_letters(sqs, url, limit=LIST_LIMIT)
        context["queue_size"] = review.queue_size(sqs, url)
        context["queue_url"] = url
    except (BotoCoreError, ClientError) as error:
        context["unavailable"] = str(error)[:300]
        return render(request, "admin/dead_letters.html", context, status=503)
    reason = request.GET.get("reason") or ""
    context["by_reason"] = sorted(Counter(letter.reason for letter in letters).items(), key=lambda item: -item[1])
    context["reason"] = reason
    context["letters"] = [
        {"letter": letter, "sent_at": datetime.fromtimestamp(letter.sent_at_ms / 1000, UTC), "message": letter.message}
        for letter in letters
        if not reason or letter.reason == reason
    ]
    return render(request, "admin/dead_letters.html", context)


def _act(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    ids = request.POST.getlist("message_id")
    reason = request.POST.get("all_of_reason") or None
    back = reverse("admin-dead-letters") + (f"?reason={request.GET['reason']}" if request.GET.get("reason") else "")
    if action not in ("redrive", "discard") or not (ids or reason):
        messages.warning(request, "Choose letters (or a reason) and an action.")
        return HttpResponseRedirect(back)
    chosen: list[review.QueuedLetter] = []
    try:
        sqs, url = _queue()
        chosen, _others = review.act_on(sqs, url, message_ids=ids, reason=reason, limit=LIST_LIMIT)
        if action == "discard":
            count = review.delete(sqs, url, chosen)
            messages.success(request, f"Discarded {count} dead letter(s).")
            logger.info("%s discarded %d dead letters", request.user, count)
        else:
            outcome = review.redrive(
                chosen, sqs=sqs, queue_url=url, kinesis=_kinesis(), stream=settings.ALLEYCAT_STREAM
            )
            messages.success(
                request,
                f"Put {outcome.records} record(s) of {outcome.redriven} letter(s) back on {settings.ALLEYCAT_STREAM}; "
                "records still bad come back here with their reason.",
            )
            if outcome.not_redrivable or outcome.failed:
                messages.warning(
                    request,
                    f"Left in the queue: {outcome.not_redrivable} not redrivable (a bad S3 object, a DynamoDB-stream "
                    f"batch or a cut payload), {outcome.failed} refused by the stream.",
                )
            logger.info("%s redrove %d dead letters (%d records)", request.user, outcome.redriven, outcome.records)
    except (BotoCoreError, ClientError) as error:
        messages.error(request, f"The queue or the stream is unavailable: {str(error)[:300]}")
    if ids and len({letter.message_id for letter in chosen} & set(ids)) < len(ids):
        messages.info(request, "Some letters were no longer in the queue (handled by someone else?).")
    return HttpResponseRedirect(back)
