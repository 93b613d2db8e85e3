-- smss schema 3 for SQLite: what applications and monitoring need (docs/integrations.md).

-- Events waiting to be posted: one row per event and destination (a [webhook:NAME]
-- section, or the dlr-url a Kannel-style sendsms asked for).  Written in the
-- transaction that stores what the event tells; deleted once the receiver
-- answered 2xx; kept as 'failed' when it did not within its max_age.
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    target          TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    url             TEXT    NULL,
    payload         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NULL,
    claimed_by      TEXT    NULL,
    claimed_at      TEXT    NULL,
    finished_at     TEXT    NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (target, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, finished_at);

-- Running totals the dispatchers keep in the transactions that change them
-- (the figures of /metrics): messages by transport and status, parts, reports,
-- received, the accepted-to-sent histogram, webhook deliveries.
CREATE TABLE IF NOT EXISTS tally (
    name            TEXT    NOT NULL,
    transport       TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    value           REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (name, transport, detail)
);

-- The first answer to each Idempotency-Key of the HTTP API, per token, for 24 hours.
CREATE TABLE IF NOT EXISTS idempotency_key (
    token_id        INTEGER NOT NULL,
    idem_key        TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    answer          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (token_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_key_created_at ON idempotency_key (created_at);

-- The dlr-url and dlr-mask a /cgi-bin/sendsms request gave its message.
CREATE TABLE IF NOT EXISTS dlr_request (
    msg_id          INTEGER PRIMARY KEY,
    url             TEXT    NOT NULL,
    mask            INTEGER NOT NULL,
    sender          TEXT    NOT NULL DEFAULT '',
    service         TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS dlr_request_created_at ON dlr_request (created_at);
