"""Webhooks: signing secrets, the signature, and the dispatcher that delivers the outbox."""
