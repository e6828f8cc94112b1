from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running the system rather than racing: the make-run supervisor, the bike simulator, staff pipeline pages."""

    name = "ops"
    verbose_name = "Operations"
