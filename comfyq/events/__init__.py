"""Job news: the event log in Redis, what each move announces, and the SSE streams that carry it."""
