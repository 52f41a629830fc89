"""Accepting work: planning, fair-share admission, batches, cancellation and uploads."""
