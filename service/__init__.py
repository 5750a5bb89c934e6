"""Chargeline: a fair, automatic queue for busy EV chargers, fed by eDRV webhooks."""
