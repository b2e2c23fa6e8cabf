"""Clock starts for tests whose records reach a real DynamoDB."""

from __future__ import annotations

#: DynamoDB Local deletes an item whose TTL ``expiration`` is in the (real) past within
#: about a second, so a fake clock in 2024 would see its records vanish. 2100-01-01 (UTC)
#: keeps every expiration ahead of real time; start ``FakeClock(FUTURE_START)``.
FUTURE_START = 4_102_444_800.0
