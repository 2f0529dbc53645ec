"""Understanding: one `Reading` per message (bot/understand/reading.py is the contract with the dialogue).

    from bot.understand import Reader, Context
    reading = Reader(bundle).read("new hires never show up in Cato", Context())
"""

from bot.understand.reading import (  # noqa: F401
    Act,
    CheckAnswer,
    Command,
    Context,
    Entities,
    Evidence,
    Option,
    PromptSpec,
    Reading,
    Reply,
    SymptomScore,
)


def __getattr__(name: str):
    # Reader pulls in the classifier; importing the contract alone stays cheap.
    if name == "Reader":
        from bot.understand.reader import Reader

        return Reader
    raise AttributeError(name)
