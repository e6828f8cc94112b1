"""The local pipeline's processes for ``make run`` (processors.local.stack)."""

from __future__ import annotations

import sys

from processors.local.stack import local_pipeline_services


def test_embedded_endpoint_bootstrap_and_runner_with_defaults_filled_in():
    env = {"PATH": "/bin"}
    services = local_pipeline_services(python=sys.executable, base_env=env)
    assert [s["name"] for s in services] == ["aws", "bootstrap", "runner"]
    aws, bootstrap, runner = services
    assert aws["argv"][1:] == ["-m", "processors.local.endpoint", "4566"]
    assert aws["ready_url"] == "http://127.0.0.1:4566/moto-api/"
    assert bootstrap["oneshot"] and bootstrap["argv"][1:] == ["-m", "processors.local.bootstrap"]
    assert runner["argv"][1:] == ["-m", "processors.local.runner"] and not runner.get("oneshot")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566" and env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["ALLEYCAT_FIREHOSE_BUFFER_SECONDS"] == "10"


def test_another_port_and_names_from_the_environment():
    env = {"ALLEYCAT_AWS_PORT": "4599", "ALLEYCAT_STREAM": "my-bikes", "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": "3"}
    aws, bootstrap, _runner = local_pipeline_services(python="python", base_env=env)
    assert aws["ready_url"] == "http://127.0.0.1:4599/moto-api/" and env["AWS_ENDPOINT_URL"].endswith(":4599")
    assert bootstrap["argv"][-2:] == ["--parameter", "StreamName=my-bikes"]
    assert env["ALLEYCAT_FIREHOSE_BUFFER_SECONDS"] == "3"


def test_an_endpoint_set_by_the_user_is_used_as_is_and_no_moto_is_started():
    env = {"AWS_ENDPOINT_URL": "http://localhost:4566", "AWS_ACCESS_KEY_ID": "mine"}
    services = local_pipeline_services(python="python", base_env=env)
    assert [s["name"] for s in services] == ["bootstrap", "runner"]
    assert env["AWS_ENDPOINT_URL"] == "http://localhost:4566" and env["AWS_ACCESS_KEY_ID"] == "mine"
