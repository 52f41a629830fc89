"""Job news: the announcer (its one producer), the event log in Redis it writes, and the SSE streams that read it."""
