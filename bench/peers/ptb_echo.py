"""A bare python-telegram-bot bot at default settings: the peer for bench/startup.py and
bench/updates.py. Replies to /help; prints `ready` once it is polling."""

import asyncio
import os
import signal

from telegram import Update
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text("echo")


async def main() -> None:
    api = os.environ["TELEGRAM_API_URL"]
    app = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_TOKEN"])
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("help", reply))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with app:
        await app.updater.start_polling()
        await app.start()
        print("ready", flush=True)
        await stop.wait()
        await app.updater.stop()
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main())
