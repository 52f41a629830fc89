"""The job state machine, queue positions and read-side queries."""
