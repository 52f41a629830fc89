"""Users, API keys, credits and per-user limits."""
