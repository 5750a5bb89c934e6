"""Outbound webhooks: app backends subscribe to ticket changes; the outbox and the sender deliver them."""
