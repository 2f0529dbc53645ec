"""The `Outcome` of an episode (bot/outcome.py): stored with the conversation under one record kind, and
reported with the turn that recorded it, which is all the metrics read."""

from __future__ import annotations

import json

from bot.engine import Engine
from bot.events import Incoming
from bot.outcome import OUTCOME_KIND, Ending, Outcome
from bot.store.memory import MemoryStore


async def test_an_episode_ends_once_and_its_record_is_what_the_turn_reported(bundle):
    store = MemoryStore()
    engine = Engine(bundle, store)

    async def say(**kw):
        return await engine.handle(Incoming(channel="test", conversation_id="test:o", **kw))

    opening = await say(text="new hires never show up in Cato")
    assert opening.phase != "closed" and opening.ending is None
    assert await store.records(OUTCOME_KIND) == {}
    closing = await say(text="cancel")
    assert closing.phase == "closed" and closing.ending is not None
    assert closing.ending.first and not closing.ending.rated and closing.ending.now.outcome == "cancelled"
    stored = await store.get_record(OUTCOME_KIND, "test:o#1")
    assert stored is not None and Outcome.model_validate_json(stored) == closing.ending.now
    # Another turn of the closed episode writes the record again, but is not another ending.
    again = await say(choice="helpful:yes")
    assert again.ending is not None and not again.ending.first and again.ending.before is not None
    # A new report starts a new episode, with its own record when it ends.
    await say(text="SCIM provisioning fails with a 401 from Cato")
    second = await say(text="cancel")
    assert second.ending is not None and second.ending.first and second.ending.now.key == "test:o#2"


def test_feedback_counts_when_helpful_first_arrives_and_a_changed_outcome_ends_again():
    closed = Outcome(conversation="c", episode=1, outcome="resolved")
    rated = closed.model_copy(update={"helpful": True})
    assert Ending(now=closed).first and not Ending(now=closed).rated
    assert Ending(now=rated, before=closed).rated and not Ending(now=rated, before=closed).first
    assert not Ending(now=rated, before=rated).rated
    assert Ending(now=closed.model_copy(update={"outcome": "escalated"}), before=closed).first


def test_records_written_by_earlier_versions_still_load():
    legacy = {
        "conversation": "slack:T1:C1:1.2", "episode": 2, "channel": "slack", "symptom": "cannot-enable", "topic": None,
        "cause": "account-requirements", "outcome": "escalated", "helpful": None, "questions_to_cause": 3,
        "questions": 4, "turns": 9, "ended_at": 1700000000.5,
    }
    outcome = Outcome.model_validate_json(json.dumps(legacy))
    assert outcome.key == "slack:T1:C1:1.2#2" and json.loads(outcome.model_dump_json()) == legacy
