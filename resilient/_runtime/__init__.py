"""What every policy runs on: the clock (and fake time for tests), the async
backend, worker threads, SIGALRM, the on/off switch, the environment's
defaults, field validation and the dict form of configs."""
