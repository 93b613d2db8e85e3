"""Connections to a Galera cluster named by a URL with every node: each fault a site meets
(a node killed, frozen, cut off from the others) moves the connection to a node that can
work, within the configured timeouts, and reads see what was written through any node."""

from __future__ import annotations

import time

import pytest

from smss.store.database import connect

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

TIMEOUT = 3.0  # connect, read and write timeouts of the connections under test


@pytest.fixture
def cluster(galera):
    yield galera
    galera.heal()


def open_on(cluster, first: int, name: str = ""):
    """A connection through a URL that lists node ``first`` first, then the others."""
    order = cluster.nodes[first:] + cluster.nodes[:first]
    url = cluster.create_database(name or None)
    listed = cluster.url(url.rsplit("/", 1)[1], order)
    conn = connect(listed, connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                   write_timeout=TIMEOUT)
    return conn, listed


def insert(conn, value: int) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).close()


def values(conn) -> list:
    return [int(row[0]) for row in conn.read().query("SELECT v FROM t ORDER BY v")]


def make_table(conn) -> None:
    conn.execute("CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)").close()


def test_reads_are_causal_on_every_node(cluster):
    conn, url = open_on(cluster, 0)
    make_table(conn)
    others = [connect(cluster.node_url(node, url.rsplit("/", 1)[1])) for node in cluster.nodes[1:]]
    try:
        for value in range(20):  # a write through node 1 is seen at once through 2 and 3
            insert(conn, value)
            assert all(values(other)[-1] == value for other in others)
        assert int(conn.read().query_one("SELECT @@session.wsrep_sync_wait")[0]) == 1
        assert conn.session.node_address == cluster.nodes[0].address()
    finally:
        for other in [conn, *others]:
            other.close()


def test_a_killed_node_moves_the_connection_to_another(cluster):
    conn, _ = open_on(cluster, 0)
    make_table(conn)
    insert(conn, 1)
    cluster.nodes[0].kill()
    try:
        insert(conn, 2)  # may fail (the server was lost under it) or already go elsewhere
    except Exception:  # noqa: BLE001
        pass
    insert(conn, 3)  # by now on another node
    assert conn.session.server in (cluster.nodes[1].address(), cluster.nodes[2].address())
    assert {1, 3} <= set(values(conn))
    conn.close()


def test_a_node_cut_off_from_the_others_is_left(cluster):
    conn, url = open_on(cluster, 1)
    make_table(conn)
    insert(conn, 1)
    cluster.nodes[1].isolate()
    cluster.wait(lambda: not cluster.nodes[1].ready(), what="node 2 leaves the primary component")
    with pytest.raises(Exception, match="1047|WSREP"):  # noqa: B017
        values(conn)
    insert(conn, 2)  # on node 3 now
    assert conn.session.server == cluster.nodes[2].address()
    fresh = connect(url, connect_timeout=TIMEOUT, read_timeout=TIMEOUT, write_timeout=TIMEOUT)
    assert fresh.session.server != cluster.nodes[1].address()  # never the isolated node
    assert values(fresh) == [1, 2]
    conn.close()
    fresh.close()


def test_a_frozen_node_costs_one_timeout(cluster):
    conn, _ = open_on(cluster, 2)
    make_table(conn)
    insert(conn, 1)
    cluster.nodes[2].freeze()
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - the read timeout ends the wait
        values(conn)
    waited = time.monotonic() - started
    cluster.wait(lambda: cluster.nodes[0].cluster_size() == 2, what="the others evict node 3")
    insert(conn, 2)
    assert conn.session.server == cluster.nodes[0].address()
    assert values(conn) == [1, 2]
    print(f"frozen node: the statement failed after {waited:.1f}s (read_timeout {TIMEOUT:g}s)")
    conn.close()


def test_with_no_node_in_the_primary_component_the_error_names_each(cluster):
    conn, url = open_on(cluster, 0)
    cluster.nodes[1].kill()
    cluster.nodes[2].kill()  # node 1 alone: one of three, no quorum
    cluster.wait(lambda: not cluster.nodes[0].ready(), what="node 1 loses quorum")
    with pytest.raises(Exception) as caught:  # noqa: B017
        connect(url, connect_timeout=TIMEOUT, read_timeout=TIMEOUT, write_timeout=TIMEOUT)
    text = str(caught.value)
    assert all(node.address() in text for node in cluster.nodes), text
    assert "primary component" in text
    conn.close()
