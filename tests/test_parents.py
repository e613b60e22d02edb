"""Parent rows for standalone databases: ``create_user`` and ``create_plan``."""

from __future__ import annotations

from uuid import uuid4

import pytest

from eventsource import (
    EventStore,
    InvalidInput,
    NewEvent,
    UnknownReference,
    create_plan,
    create_user,
)


def test_created_parents_let_events_be_appended(store: EventStore) -> None:
    user = create_user(store)
    plan = create_plan(store, created_by_user_id=user)
    result = store.append(plan, [NewEvent("plan_created", {"name": "x"}, actor_user_id=user)])
    assert result.appended == 1
    assert store.version(plan) == 1


def test_creating_a_parent_again_with_its_id_changes_nothing(store: EventStore) -> None:
    user = uuid4()
    assert create_user(store, user) == user
    assert create_user(store, str(user)) == user
    plan = create_plan(store, created_by_user_id=user)
    assert create_plan(store, plan, created_by_user_id=user) == plan


def test_a_plan_needs_an_existing_creator(store: EventStore) -> None:
    stranger = uuid4()
    with pytest.raises(UnknownReference, match=f"created_by_user_id {stranger} is not a user"):
        create_plan(store, created_by_user_id=stranger)


def test_ids_must_be_uuids(store: EventStore) -> None:
    with pytest.raises(InvalidInput, match="user_id is not a UUID"):
        create_user(store, "bob")
    user = create_user(store)
    with pytest.raises(InvalidInput, match="plan_id is not a UUID"):
        create_plan(store, "plan-1", created_by_user_id=user)
