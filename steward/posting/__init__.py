"""Posting: compose posts from templates and words, publish them to X and a Telegram channel."""
