"""A bare python-telegram-bot bot at default settings: the peer for bench/startup.py and
bench/updates.py. Replies to /help; prints `ready` once it is polling.

PTB_RATE_LIMITER=aio adds PTB's AIORateLimiter (its defaults: no retry after a 429);
PTB_RATE_LIMITER=aio-retry the same with max_retries=5."""

import asyncio
import os
import signal

from telegram import Update
from telegram.ext import AIORateLimiter, ApplicationBuilder, CommandHandler, ContextTypes


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text("echo")


async def main() -> None:
    api = os.environ["TELEGRAM_API_URL"]
    builder = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_TOKEN"])
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
    )
    limiter = os.environ.get("PTB_RATE_LIMITER", "")
    if limiter:
        retries = 5 if limiter == "aio-retry" else 0
        builder = builder.rate_limiter(AIORateLimiter(max_retries=retries)).concurrent_updates(True)
    app = builder.build()
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
