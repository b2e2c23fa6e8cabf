"""Which batch mode the DynamoDB store writes in: ``auto`` from the client's endpoint,
``IDEMPOTENCY_BATCH_MODE`` through ``from_config`` and the processor's default store, an
explicit ``batch_mode=`` over both. No request is sent: clients are only constructed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, get_args
from unittest.mock import MagicMock

import boto3
import pytest

from data_aggregator import ReusableProcessor
from data_aggregator.config import AppConfig, IdempotencyBatchMode
from data_aggregator.exceptions import IdempotencyConfigurationError
from data_aggregator.idempotency import BatchMode, DynamoDBIdempotencyStore
from data_aggregator.idempotency._dynamodb import auto_batch_mode
from data_aggregator.testing import use_environment
from tests.docs_support import python_block_containing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AWS = "https://dynamodb.us-east-1.amazonaws.com"
LOCAL = "http://127.0.0.1:8000"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def dynamodb(endpoint_url: str | None) -> DynamoDBClient:
    """A client of ``endpoint_url`` (``None``: the region's AWS endpoint), never called."""
    client: DynamoDBClient = boto3.session.Session(
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).client("dynamodb", endpoint_url=endpoint_url)
    return client


def config(**fields: object) -> AppConfig:
    return AppConfig.model_validate(
        {"distribution_bucket_name": "bundles", "idempotency_table_name": "idem", **fields}
    )


@pytest.mark.parametrize(
    ("endpoint_url", "mode"),
    [
        (AWS, "statements"),
        ("https://dynamodb-fips.us-gov-west-1.amazonaws.com", "statements"),
        ("https://dynamodb.cn-north-1.amazonaws.com.cn", "statements"),
        ("https://dynamodb.us-east-1.api.aws", "statements"),
        # China's dual-stack endpoint (use_dualstack_endpoint=True in cn-north-1).
        ("https://dynamodb.cn-north-1.api.amazonwebservices.com.cn", "statements"),
        # An isolated partition's endpoint is not in the list: the safe direction.
        ("https://dynamodb.us-iso-east-1.c2s.ic.gov", "hybrid"),
        ("https://vpce-0a1b-c2d3.dynamodb.eu-west-1.vpce.amazonaws.com", "statements"),
        ("https://DynamoDB.EU-West-1.AmazonAWS.com:443/", "statements"),
        ("https://dynamodb.us-east-1.amazonaws.com.", "statements"),
        (LOCAL, "hybrid"),
        ("http://localhost:4566", "hybrid"),
        ("http://localhost.localstack.cloud:4566", "hybrid"),
        ("https://dynamodb.us-east-1.amazonaws.com.example.org", "hybrid"),
        ("https://notamazonaws.com", "hybrid"),
        ("https://proxy.example/dynamodb.us-east-1.amazonaws.com", "hybrid"),
        ("", "hybrid"),
        (None, "hybrid"),
    ],
)
def test_auto_is_statements_on_aws_endpoints_only(endpoint_url: str | None, mode: str) -> None:
    """``auto`` is ``statements`` when the endpoint's host is AWS's own, else ``hybrid``."""
    assert auto_batch_mode(endpoint_url) == mode


def test_a_mocked_client_builds_a_hybrid_store() -> None:
    """A ``MagicMock`` client's endpoint is no string: ``auto`` means ``hybrid`` (as the
    constructor's default), and ``from_config`` builds the store as before ``auto``."""
    assert auto_batch_mode(MagicMock()) == "hybrid"
    store = DynamoDBIdempotencyStore.from_config(config(), client=MagicMock())
    assert store.batch_mode == "hybrid"


@pytest.mark.parametrize(("endpoint_url", "mode"), [(None, "statements"), (LOCAL, "hybrid")])
def test_settings_without_a_batch_mode_mean_auto(endpoint_url: str | None, mode: str) -> None:
    """A settings object written before ``IDEMPOTENCY_BATCH_MODE`` (no such attribute)
    still builds a store, in the ``auto`` mode."""
    settings = SimpleNamespace(
        idempotency_table_name="idem",
        idempotency_partition_key="object_key",
        idempotency_ttl_seconds=3600,
    )
    store = DynamoDBIdempotencyStore.from_config(settings, client=dynamodb(endpoint_url))
    assert (store.table_name, store.batch_mode) == ("idem", mode)


def test_the_setting_names_auto_and_every_store_mode() -> None:
    """``IDEMPOTENCY_BATCH_MODE`` accepts ``auto`` and exactly the store's batch modes."""
    assert set(get_args(IdempotencyBatchMode)) == {"auto", *get_args(BatchMode)}


@pytest.mark.parametrize(("endpoint_url", "mode"), [(None, "statements"), (LOCAL, "hybrid")])
def test_from_config_resolves_auto_from_the_client(endpoint_url: str | None, mode: str) -> None:
    """The default setting, ``auto``, resolves from the client's endpoint when the store is
    built, and the store reports the mode it writes in."""
    store = DynamoDBIdempotencyStore.from_config(config(), client=dynamodb(endpoint_url))
    assert store.client.meta.endpoint_url == (endpoint_url or AWS)
    assert store.batch_mode == mode


@pytest.mark.parametrize("mode", get_args(BatchMode))
def test_a_set_mode_is_used_on_any_endpoint(mode: BatchMode) -> None:
    """A mode other than ``auto`` is used as set, on AWS and on an emulator alike."""
    for endpoint_url in (None, LOCAL):
        store = DynamoDBIdempotencyStore.from_config(
            config(idempotency_batch_mode=mode), client=dynamodb(endpoint_url)
        )
        assert store.batch_mode == mode


def test_an_explicit_batch_mode_wins_over_the_setting() -> None:
    """``batch_mode=`` given to ``from_config`` wins over ``IDEMPOTENCY_BATCH_MODE``; the
    constructor keeps its own default, ``hybrid``, and takes ``auto`` too."""
    client = dynamodb(None)
    settings = config(idempotency_batch_mode="statements")
    assert (
        DynamoDBIdempotencyStore.from_config(settings, client=client, batch_mode="single")
    ).batch_mode == "single"
    assert (
        DynamoDBIdempotencyStore.from_config(config(), client=client, batch_mode="transact")
    ).batch_mode == "transact"
    assert DynamoDBIdempotencyStore("idem", client=client).batch_mode == "hybrid"
    assert DynamoDBIdempotencyStore("idem", client=client, batch_mode="auto").batch_mode == (
        "statements"
    )


def test_an_unknown_batch_mode_is_a_configuration_error() -> None:
    """The constructor refuses a mode it does not know, naming the ones it takes."""
    with pytest.raises(IdempotencyConfigurationError, match="auto, hybrid, single"):
        DynamoDBIdempotencyStore("idem", client=dynamodb(None), batch_mode="partiql")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({}, "statements"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": LOCAL}, "hybrid"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "hybrid"),
        ({"IDEMPOTENCY_BATCH_MODE": "Hybrid"}, "hybrid"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": LOCAL, "IDEMPOTENCY_BATCH_MODE": "transact"}, "transact"),
    ],
    ids=["aws", "dynamodb-endpoint", "shared-endpoint", "set-hybrid", "set-transact"],
)
def test_the_processor_default_store_follows_the_environment(
    environ: dict[str, str], mode: str
) -> None:
    """``ReusableProcessor(AppConfig.from_env())`` builds its store in the mode the
    environment says: ``auto`` is ``statements`` on AWS, ``hybrid`` on a custom endpoint
    (``AWS_ENDPOINT_URL_DYNAMODB`` or ``AWS_ENDPOINT_URL``, as boto3 reads them)."""
    base = {
        "DISTRIBUTION_BUCKET_NAME": "bundles",
        "IDEMPOTENCY_TABLE_NAME": "idem",
        "METRICS_ENABLED": "false",
        "AWS_DEFAULT_REGION": "us-east-1",
        **FAKE_CREDENTIALS,
    }
    with use_environment({**base, **environ}):
        processor = ReusableProcessor(AppConfig.from_env())
    store = processor.store
    assert isinstance(store, DynamoDBIdempotencyStore)
    assert store.batch_mode == mode
    store.close()


def test_the_configuration_page_example_runs() -> None:
    """The example of ``docs/configuration.md`` resolves ``auto`` as the page says."""
    code = python_block_containing("docs/configuration.md", "batch_mode ==")
    with use_environment(FAKE_CREDENTIALS):  # no endpoint of the developer's shell
        exec(compile(code, "docs/configuration.md", "exec"), {})  # noqa: S102 - our own docs
