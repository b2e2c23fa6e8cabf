"""Shared pytest configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci" runs more examples; "dev" keeps the local loop quick. Select with HYPOTHESIS_PROFILE.
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Never let a test reach a real AWS account: fake credentials and a fixed region for every
# boto3 client the tests (or the library's defaults) create.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
# No session token: SeaweedFS checks SigV4 and refuses a token it did not issue.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)

# The fixtures the package ships for users' tests (moto server, buckets, table); the
# integration tests use them too.
pytest_plugins = ["data_aggregator.testing.pytest_plugin"]
