-- smss schema 2 for SQLite: users and API tokens of the web interface, and the
-- indexes its pages need to list newest first by (time, id) under every filter
-- without sorting (the implicit rowid ends every index).

CREATE TABLE IF NOT EXISTS web_user (
    name            TEXT    NOT NULL PRIMARY KEY,
    password_hash   TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

-- Only the SHA-256 of a token is stored; the token is shown once when made.
CREATE TABLE IF NOT EXISTS api_token (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    token_hash      TEXT    NOT NULL UNIQUE,
    created_at      TEXT    NOT NULL,
    last_used_at    TEXT    NULL
);

CREATE INDEX IF NOT EXISTS msg_created_at ON msg (created_at);
CREATE INDEX IF NOT EXISTS msg_phone_created_at ON msg (phone, created_at);
CREATE INDEX IF NOT EXISTS sms_status_sent_at ON sms (status, sent_at);
CREATE INDEX IF NOT EXISTS sms_delivery_sent_at ON sms (delivery, sent_at);
CREATE INDEX IF NOT EXISTS sms_phone_sent_at ON sms (phone, sent_at);
CREATE INDEX IF NOT EXISTS rcv_phone_received_at ON rcv (phone, received_at);
