"""Lanes: which destinations have due mail, the cap of sessions per lane, and dead sessions."""

import subprocess
import sys
from datetime import timedelta

import pytest
from support.factories import configure, queue, row

from portal.delivery import lanes
from portal.delivery.engine import Engine
from portal.extensions import db
from portal.models import DeliverySession, utcnow
from portal.outbox import store


def test_a_lane_gives_no_more_places_than_its_cap_until_one_is_freed(app, people):
    worker = lanes.worker_name()
    assert lanes.open_session("a" * 32, "lane", 2, worker, 60)
    assert lanes.open_session("b" * 32, "lane", 2, worker, 60)
    assert not lanes.open_session("c" * 32, "lane", 2, worker, 60)
    assert lanes.open_session("c" * 32, "other", 2, worker, 60)  # each lane its own places
    lanes.close_session("a" * 32)
    assert lanes.open_session("d" * 32, "lane", 2, worker, 60)
    assert lanes.held("lane") == 2


def test_a_place_whose_heartbeat_stopped_is_free_again(app, people):
    worker = lanes.worker_name()
    assert lanes.open_session("a" * 32, "lane", 1, worker, 0)  # expires at once
    assert lanes.open_session("b" * 32, "lane", 1, worker, 60)
    assert not lanes.open_session("c" * 32, "lane", 1, worker, 60)


def test_grouped_mail_is_due_a_window_after_the_first_one(app, people, server):
    configure(port=server.port, group_sends=True)
    (first,) = queue(people.acme)
    now = utcnow()
    waiting = lanes.scan(now, window_seconds=2, group_max=100)
    assert waiting.lanes == [] and waiting.next_due is not None
    assert timedelta(seconds=1) < waiting.next_due - now <= timedelta(seconds=2)
    due = lanes.scan(now + timedelta(seconds=2), window_seconds=2, group_max=100)
    assert [(lane.key, lane.due) for lane in due.lanes] == [(row(first).lane, 1)]
    assert lanes.scan(now, window_seconds=2, group_max=1).lanes != []  # a full group goes now


def test_a_restarted_worker_frees_the_places_and_claims_of_a_dead_one_at_once(app, people, server):
    configure(port=server.port)
    messages = queue(people.acme, 3)
    lane = row(messages[0]).lane
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host_and_namespace = lanes.worker_name().rpartition(":")[0]
    dead_worker = f"{host_and_namespace}:{dead.pid}"
    assert lanes.open_session("a" * 32, lane, 1, dead_worker, 600)
    assert store.claim("a" * 32, lane, limit=3, lease_seconds=600) == [m.id for m in messages]

    Engine(app)._sweep()
    assert {row(m).status for m in messages} == {"queued"}
    assert db.session.get(DeliverySession, "a" * 32) is None


def test_a_live_session_of_this_host_is_left_alone(app, people, server):
    configure(port=server.port)
    (message,) = queue(people.acme)
    lane = row(message).lane
    assert lanes.open_session("a" * 32, lane, 1, lanes.worker_name(), 600)
    assert store.claim("a" * 32, lane, limit=1, lease_seconds=600) == [message.id]
    Engine(app)._sweep()
    assert row(message).status == "sending"


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_lane_takes_its_cap_from_the_settings_in_force(app, people, server, parallel):
    configure(people.acme, port=server.port, max_sessions=parallel)
    (message,) = queue(people.acme)
    lane = row(message).lane
    assert lanes.cap_of(lane) == parallel
