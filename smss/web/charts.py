"""The numbers behind the history charts: messages per hour (last 24) and per day
(last 30), overall or of one transport, in the configured time zone.

One query per table (``smss.store.sent.hourly``, ``smss.store.received.hourly``)
counts rows per UTC hour over the 30 days from a covering index; both charts
are folded from that.  ``HourCache`` keeps the counts of the hours older than
two hours for ten minutes, so a status page shown again reads only the last
hours (30 busy days are a million index entries).  A series counts:

- sent: ``sms`` rows with status sent, by the hour they were sent;
- failed: status failed or expired (given up), by that hour;
- delivered: of the messages sent in that hour, those whose delivery reports
  say delivered;
- received: ``rcv`` rows by the hour they were received.

The hourly chart has one bucket per UTC hour, shown with its local time
(``[web] timezone``); days are the local days, each made of the hours that
start in it (in a zone whose offset is not whole hours, to the hour).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Dict, Iterable, List, Optional, Tuple

from smss.store import received, sent

SERIES = (("sent", "sent"), ("failed", "failed"), ("delivered", "delivered"),
          ("received", "received"))
HOURS = 24
DAYS = 30


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str  # "hour" or "day"
    keys: List[str]  # one per bucket: "2025-03-01T14Z" (UTC hour) or "2025-03-01" (local day)
    labels: List[str]  # the axis label of each bucket ("" where none is drawn)
    names: List[str]  # the long name of each bucket, for tooltips and the table
    series: Dict[str, List[int]]  # series name -> one count per bucket

    def total(self, name: str) -> int:
        return sum(self.series[name])


@dataclass(frozen=True)
class History:
    hourly: Chart
    daily: Chart


class HourCache:
    """The counts of hours older than ``recent``, kept for ``ttl`` seconds (one per web
    application; thread-safe).  A delivery report or a deletion that changes an older
    hour shows once the counts are read again."""

    def __init__(self, ttl: float = 600.0, recent: timedelta = timedelta(hours=2)) -> None:
        self.ttl = ttl
        self.recent = recent
        self._lock = threading.Lock()
        self._filled = -ttl  # time.monotonic() of the last full read
        self._since = self._until = datetime.min
        self._rows: Tuple[list, list] = ([], [])

    def rows(self, conn, since: datetime, now_utc: datetime) -> Tuple[list, list]:
        """(sms counts, rcv counts) of the hours from ``since`` (a whole hour) to now."""
        with self._lock:
            cached = time.monotonic() - self._filled < self.ttl and self._since <= since
            until, old = self._until, self._rows
        if not cached:
            until = _hour(now_utc) - self.recent
            old = (sent.hourly(conn, since, until), received.hourly(conn, since, until))
            with self._lock:
                self._filled, self._since, self._until, self._rows = (
                    time.monotonic(), since, until, old)
        new = (sent.hourly(conn, until, now_utc), received.hourly(conn, until, now_utc))
        return ([row for row in old[0] if row.hour >= since] + new[0],
                [row for row in old[1] if row.hour >= since] + new[1])


def load(conn, now_utc: datetime, zone: tzinfo, transport: Optional[str] = None,
         cache: Optional[HourCache] = None) -> History:
    """Both charts, from two queries covering the 30 local days up to now (rows stamped
    later, by a dispatcher whose clock is ahead, wait until their time comes)."""
    local_now = _local(now_utc, zone)
    first_day = local_now.date() - timedelta(days=DAYS - 1)
    start_local = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    since = _hour(min(start_local.astimezone(timezone.utc).replace(tzinfo=None),
                      now_utc - timedelta(hours=HOURS)))
    if cache is not None:
        sms_rows, rcv_rows = cache.rows(conn, since, now_utc)
    else:
        sms_rows, rcv_rows = sent.hourly(conn, since, now_utc), received.hourly(conn, since,
                                                                                 now_utc)
    return build(sms_rows, rcv_rows, now_utc, zone, transport)


def build(sms_rows: Iterable[sent.HourCount], rcv_rows: Iterable[received.HourCount],
          now_utc: datetime, zone: tzinfo, transport: Optional[str] = None) -> History:
    """Fold UTC-hour counts into the two charts (pure: the tests feed it rows)."""
    per_hour: Dict[datetime, Dict[str, int]] = {}
    for row in sms_rows:
        if transport is not None and row.transport != transport:
            continue
        counts = per_hour.setdefault(row.hour, {})
        if row.status == sent.SENT:
            counts["sent"] = counts.get("sent", 0) + row.count
        elif row.status in (sent.FAILED, sent.EXPIRED):
            counts["failed"] = counts.get("failed", 0) + row.count
        if row.delivery == sent.DELIVERED:
            counts["delivered"] = counts.get("delivered", 0) + row.count
    for row in rcv_rows:
        if transport is not None and row.transport != transport:
            continue
        counts = per_hour.setdefault(row.hour, {})
        counts["received"] = counts.get("received", 0) + row.count

    this_hour = now_utc.replace(minute=0, second=0, microsecond=0)
    utc_hours = [this_hour - timedelta(hours=n) for n in range(HOURS - 1, -1, -1)]
    hour_keys = [_hour_key(hour) for hour in utc_hours]
    local_hours = [_local(hour, zone) for hour in utc_hours]
    today = _local(now_utc, zone).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    day_keys = [day.isoformat() for day in days]
    hourly = {key: dict.fromkeys(name for name, _ in SERIES) for key in hour_keys}
    daily = {key: dict.fromkeys(name for name, _ in SERIES) for key in day_keys}
    for utc_hour, counts in per_hour.items():
        local_day = _local(utc_hour, zone).date().isoformat()
        for table, key in ((hourly, _hour_key(utc_hour)), (daily, local_day)):
            bucket = table.get(key)
            if bucket is None:
                continue
            for name, value in counts.items():
                bucket[name] = (bucket[name] or 0) + value
    scope = f" · {transport}" if transport else ""
    return History(
        Chart(f"Last 24 hours{scope}", "hour", hour_keys,
              [f"{local:%H:%M}" if local.hour % 3 == 0 else "" for local in local_hours],
              [f"{local:%Y-%m-%d %H:%M}" for local in local_hours], _series(hourly, hour_keys)),
        Chart(f"Last 30 days{scope}", "day", day_keys,
              [_day_label(day) if (len(days) - 1 - index) % 5 == 0 else ""
               for index, day in enumerate(days)],
              [f"{day:%a} {day.isoformat()}" for day in days], _series(daily, day_keys)),
    )


def _series(table: Dict[str, Dict[str, Optional[int]]], keys: List[str]) -> Dict[str, List[int]]:
    return {name: [table[key][name] or 0 for key in keys] for name, _ in SERIES}


def _hour(utc: datetime) -> datetime:
    return utc.replace(minute=0, second=0, microsecond=0)


def _local(utc: datetime, zone: tzinfo) -> datetime:
    return utc.replace(tzinfo=timezone.utc).astimezone(zone)


def _hour_key(utc: datetime) -> str:
    return f"{utc:%Y-%m-%dT%H}Z"


def _day_label(day: date) -> str:
    return f"{day.day}.{day.month}."
