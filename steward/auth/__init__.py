"""Account set-up for `python auth_tool.py`: X's PIN OAuth and Telegram chat-id discovery."""
