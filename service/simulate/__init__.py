"""A simulated eDRV network and its drivers: ``chargeline simulate`` and ``make demo``."""
