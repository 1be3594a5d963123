"""Telegram: the bot application, access control, the outbox and its sender, formatting."""
