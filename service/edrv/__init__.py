"""eDRV intake: decode, authenticate and file webhook deliveries into the event log."""
