"""Celery tasks of the races app: thin interfaces over services."""

from celery import shared_task

from .services import race_rotate


@shared_task(name="races.rotate", ignore_result=True)
def rotate() -> dict:
    """Rotate races to the current wall-clock window (beat: every 5 minutes).

    Asserts the world from the clock and the schedule, so a late, repeated or overlapping
    run changes nothing that a single run would not.
    """
    result = race_rotate()
    return {
        "finished": len(result.finished),
        "started": len(result.started),
        "created": len(result.created),
        "cancelled": len(result.cancelled),
    }
