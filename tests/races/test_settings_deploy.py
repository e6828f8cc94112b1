"""Production mode: `check --deploy` passes with production variables; required ones fail loudly."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
    "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "DJANGO_ALLOWED_HOSTS": "alleycat.example.com",
    "PATH": os.environ.get("PATH", ""),
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_in_production_mode(tmp_path):
    env = {**PRODUCTION_ENV, "ALLEYCAT_VAR_DIR": str(tmp_path)}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_mode_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    env["ALLEYCAT_VAR_DIR"] = str(tmp_path)
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_mode_is_the_default(tmp_path):
    env = {**PRODUCTION_ENV, "ALLEYCAT_VAR_DIR": str(tmp_path)}
    code = "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE)"
    result = run_manage("shell", "-c", code, env=env)
    assert result.stdout.strip().splitlines()[-1] == "False True", result.stderr


def test_development_mode_with_django_debug(tmp_path):
    env = {"DJANGO_DEBUG": "1", "ALLEYCAT_VAR_DIR": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    code = "from django.conf import settings; print(settings.DEBUG, settings.DATABASES['default']['ENGINE'])"
    result = run_manage("shell", "-c", code, env=env)
    assert result.stdout.strip().splitlines()[-1] == "True django.db.backends.sqlite3", result.stderr


def test_database_url_selects_postgresql(tmp_path):
    env = {
        "DJANGO_DEBUG": "1",
        "ALLEYCAT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://u:p@127.0.0.1:5999/db",
        "PATH": os.environ.get("PATH", ""),
    }
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = run_manage("shell", "-c", code, env=env)
    assert result.stdout.strip().splitlines()[-1] == "django.db.backends.postgresql", result.stderr
