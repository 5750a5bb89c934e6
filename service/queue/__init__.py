"""The pure queue domain: tickets, offers, policy; decide and evolve."""
