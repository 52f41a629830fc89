"""Jobs: the state machine, queue positions, read-side queries, the recovery policy and the broker's send paths."""
