-- smss schema 6 for SQLite: what the web interface's operators need.
-- Roles of users (the users of schema 2 become admins) and of API tokens (the
-- tokens of schema 2 keep sending: operator); logins kept on the server, so a
-- logout or a password change ends them; an audit trail of who did what;
-- pausing a transport; a bounded history of each transport's state; cancel and
-- retry (a retry is a new message naming the old one); the indexes the charts
-- read (covering: the charts never touch the table rows).

ALTER TABLE web_user ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_token ADD COLUMN role TEXT NOT NULL DEFAULT 'operator';

-- A login: only the SHA-256 of the random id in the browser's cookie is stored.
CREATE TABLE IF NOT EXISTS web_session (
    id_hash         TEXT    NOT NULL PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    last_seen_at    TEXT    NOT NULL,
    address         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS web_session_user ON web_session (user_name);

-- Who did what: actions on messages and transports, changes of users and tokens.
CREATE TABLE IF NOT EXISTS audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL DEFAULT '',
    detail          TEXT    NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);

ALTER TABLE transport_status ADD COLUMN paused_at TEXT NULL;
ALTER TABLE transport_status ADD COLUMN paused_by TEXT NULL;

-- Samples of transport_status (one per transport every few minutes and at every
-- change of state), pruned by age as they are written.
CREATE TABLE IF NOT EXISTS transport_sample (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT '',
    signal_dbm      INTEGER NULL,
    error           TEXT    NULL
);
CREATE INDEX IF NOT EXISTS transport_sample_name_at ON transport_sample (name, at);

ALTER TABLE msg ADD COLUMN retry_of INTEGER NULL;
ALTER TABLE sms ADD COLUMN retry_of INTEGER NULL;
ALTER TABLE sms ADD COLUMN retried_as INTEGER NULL;

CREATE INDEX IF NOT EXISTS sms_chart ON sms (sent_at, transport, status, delivery);
CREATE INDEX IF NOT EXISTS sms_transport_status_sent_at ON sms (transport, status, sent_at);
CREATE INDEX IF NOT EXISTS rcv_chart ON rcv (received_at, transport);
