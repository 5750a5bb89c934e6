"""Queues on the event log: loading and deciding, the dispatcher and the deadline scheduler."""
