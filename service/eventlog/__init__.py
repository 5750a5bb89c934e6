"""The append-only event log: every eDRV delivery and every Chargeline decision, in commit order."""
