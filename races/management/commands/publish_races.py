"""Publish the identity of every current and future race to the pipeline's table (idempotent).

``make run`` runs it once the embedded AWS endpoint is up, so a database that existed before race
identities did (or missed a publish while DynamoDB was down) converges at once; rotation does the
same every five minutes. A race that has settled is left unchanged.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from races.integrations import race_identities_publish, races_to_publish


class Command(BaseCommand):
    help = "Publish current and future races' identities to the pipeline's table (idempotent)."

    def handle(self, *args, **options):
        races = races_to_publish()
        published = race_identities_publish(races=races)
        self.stdout.write(f"Published {published} of {len(races)} current and future races.")
