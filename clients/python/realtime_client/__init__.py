"""Python SDK of the realtime live protocol (docs/PROTOCOL.md).

`LiveClient` (asyncio) keeps subscriptions through reconnects with exact recovery, checks filters,
applies Fossil deltas and reports every gap; `realtime_client.sync` wraps it for blocking code;
`python3 -m realtime_client sub|pub|ping` is the shell's way in.
"""

from .client import Gap, LiveClient, LiveClientError, LiveEvent, Position, Subscription
from .filter import Filter, FilterError, parse_filter
from .fossil import DeltaError, apply_delta
from .patterns import is_pattern, matches

__all__ = [
    "DeltaError",
    "Filter",
    "FilterError",
    "Gap",
    "LiveClient",
    "LiveClientError",
    "LiveEvent",
    "Position",
    "Subscription",
    "apply_delta",
    "is_pattern",
    "matches",
    "parse_filter",
]
__version__ = "0.1.0"
