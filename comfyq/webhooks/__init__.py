"""Signed webhook deliveries: subscriptions, allowed addresses, attempts, and the webhooks queue's task."""
