"""Events: the CloudEvents envelope, the contracts, the outbox, the inbox and the buses."""
