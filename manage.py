#!/usr/bin/env python
"""Django's command-line utility for Alleycat."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] != ["runstack"]:  # runstack decides what to start from the environment as it is
        from ops.devstack import apply

        apply()  # development machine (var/development) → DJANGO_DEBUG=1 and the running stack's endpoint
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
