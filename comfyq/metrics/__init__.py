"""Prometheus metrics: what every process counts, and what ``/metrics`` reads at scrape time.

Counters and histograms (job ends, queue wait and run times, webhook attempts,
credits, reconciler repairs) are kept in Redis hashes, incremented by whichever
process saw the event: API processes, GPU workers, the webhooks worker, beat,
on this host or another. Nothing is kept in a process's memory, so any API
process answers a scrape with the whole fleet's totals, and a process that
dies or restarts loses nothing. Gauges (queue depths, live jobs by state,
instances, running jobs of the busiest users) are read from the database,
Redis and the broker when scraped. ``catalogue`` declares every metric once.
"""
