"""Database URLs with several servers (the nodes of a Galera cluster), parsed purely."""

from __future__ import annotations

import pytest

from smss.store.dburl import DatabaseUrl, Host, UrlError, parse_hosts
from smss.store.errors import DatabaseError


def test_one_server_as_before():
    url = DatabaseUrl.parse("mysql://smss:secret@db.example:3307/smss")
    assert url.hosts == (Host("db.example", 3307),)
    assert (url.host, url.port, url.user, url.password, url.database) == (
        "db.example", 3307, "smss", "secret", "smss")
    assert DatabaseUrl.parse("mysql://smss@db/smss").port == 3306
    assert DatabaseUrl.parse("mysql://localhost/smss").user == ""


def test_several_servers_in_order_with_and_without_ports():
    url = DatabaseUrl.parse("mysql://smss:pw@db1,db2:3307,[fd00::3]:3308,[::1]/smss")
    assert url.hosts == (Host("db1"), Host("db2", 3307), Host("fd00::3", 3308), Host("::1"))
    assert url.describe() == "mysql://smss@db1:3306,db2:3307,[fd00::3]:3308,[::1]:3306/smss"


def test_a_password_with_an_at_sign_and_commas_in_user_info():
    url = DatabaseUrl.parse("mysql://smss:p%40ss%2Cw@db1,db2/smss")
    assert url.password == "p@ss,w" and url.hosts == (Host("db1"), Host("db2"))
    assert "p@ss" not in url.describe()
    assert DatabaseUrl.parse("mysql://smss:p@ss@db1/smss").password == "p@ss"  # not encoded


@pytest.mark.parametrize("bad", [
    "mysql://smss@db1,,db2/smss",     # an empty entry
    "mysql://smss@db1:0/smss",        # port out of range
    "mysql://smss@db1:x/smss",        # not a port
    "mysql://smss@fd00::3/smss",      # an IPv6 address needs brackets
    "mysql://smss@[fd00::3/smss",     # an unclosed bracket
    "mysql://smss@db1/",              # no database
    "postgres://smss@db1/smss",       # not ours
])
def test_bad_urls_are_clear_errors_without_the_password(bad):
    with pytest.raises(DatabaseError) as caught:
        DatabaseUrl.parse(bad.replace("smss@", "smss:hunter2@"))
    assert "hunter2" not in str(caught.value)
    assert isinstance(caught.value, UrlError)


def test_parse_hosts_alone():
    assert parse_hosts("127.0.0.1:3306") == (Host("127.0.0.1", 3306),)
    assert str(Host("::1", 3306)) == "[::1]:3306"
