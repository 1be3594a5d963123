"""Fake external services (Telegram Bot API, X API): real HTTP servers on loopback for tests."""
