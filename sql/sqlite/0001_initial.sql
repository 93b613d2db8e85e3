-- smss schema 1 for SQLite.  Times are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
-- AUTOINCREMENT: an id once given to a client is never given again.

-- The queue: what clients handed in and was acknowledged "OK <id>".
CREATE TABLE IF NOT EXISTS msg (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    phone           TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    parts           INTEGER NOT NULL DEFAULT 1,
    client          TEXT    NOT NULL DEFAULT '',
    route           TEXT    NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NULL,
    claimed_by      TEXT    NULL,
    claimed_at      TEXT    NULL,
    send_started_at TEXT    NULL
);
CREATE INDEX IF NOT EXISTS msg_due ON msg (next_attempt_at, id);

-- What was sent or finally failed; id is the msg id the client was given.
CREATE TABLE IF NOT EXISTS sms (
    id              INTEGER PRIMARY KEY,
    phone           TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    sent_at         TEXT    NOT NULL,
    parts           INTEGER NOT NULL DEFAULT 1,
    client          TEXT    NOT NULL DEFAULT '',
    route           TEXT    NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    transport       TEXT    NOT NULL DEFAULT '',
    refs            TEXT    NOT NULL DEFAULT '',
    error           TEXT    NULL,
    delivery        TEXT    NULL,
    delivered_at    TEXT    NULL
);
CREATE INDEX IF NOT EXISTS sms_sent_at ON sms (sent_at);
CREATE INDEX IF NOT EXISTS sms_phone ON sms (phone);

-- One row per sent part, to pair delivery reports with their message.
CREATE TABLE IF NOT EXISTS sms_part (
    sms_id          INTEGER NOT NULL,
    part            INTEGER NOT NULL,
    transport       TEXT    NOT NULL,
    reference       TEXT    NOT NULL,
    sent_at         TEXT    NOT NULL,
    delivery        TEXT    NULL,
    status_code     INTEGER NULL,
    reported_at     TEXT    NULL,
    PRIMARY KEY (sms_id, part)
);
CREATE INDEX IF NOT EXISTS sms_part_reference ON sms_part (transport, reference, sent_at);

-- What came in.
CREATE TABLE IF NOT EXISTS rcv (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    phone           TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    received_at     TEXT    NOT NULL,
    sent_at         TEXT    NULL,
    parts           INTEGER NOT NULL DEFAULT 1,
    smsc            TEXT    NOT NULL DEFAULT '',
    transport       TEXT    NOT NULL DEFAULT '',
    raw_pdu         TEXT    NULL,
    error           TEXT    NULL,
    handler_status  INTEGER NULL
);
CREATE INDEX IF NOT EXISTS rcv_received_at ON rcv (received_at);
CREATE INDEX IF NOT EXISTS rcv_phone ON rcv (phone);

-- What each transport (modem, SMPP link ...) looked like at the end of its last pass.
CREATE TABLE IF NOT EXISTS transport_status (
    name            TEXT    NOT NULL PRIMARY KEY,
    updated_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT '',
    signal_dbm      INTEGER NULL,
    registration    TEXT    NULL,
    operator        TEXT    NULL,
    last_error      TEXT    NULL,
    last_error_at   TEXT    NULL
);
