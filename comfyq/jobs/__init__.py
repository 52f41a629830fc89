"""Jobs: the state machine, queue positions, read-side queries and the broker's send paths."""
