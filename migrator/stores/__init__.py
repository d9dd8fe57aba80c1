"""Object stores: one protocol, one adapter per cloud."""
