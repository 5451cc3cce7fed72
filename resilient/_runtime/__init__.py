"""What every policy runs on: the clock, the async backend, worker threads,
SIGALRM, the on/off switch, field validation and the dict form of configs."""
