"""A bare aiogram 3 bot at default settings: the peer for bench/updates.py. Replies to /help."""

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import Message

dp = Dispatcher()


@dp.message(Command("help"))
async def reply(message: Message) -> None:
    await message.answer("echo")


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["TELEGRAM_TOKEN"], session=session)
    print("ready", flush=True)
    await dp.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main())
