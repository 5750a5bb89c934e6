"""HTTP interface: eDRV webhooks, operator endpoints and health checks."""
