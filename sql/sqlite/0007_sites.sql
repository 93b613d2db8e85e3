-- smss schema 7 for SQLite: which site runs each transport.
-- Each dispatcher records its site ([dispatcher] site, by default the host
-- name) with its transports' state, so `smss check` on another box can refuse
-- a transport name that a live site already uses.

ALTER TABLE transport_status ADD COLUMN site TEXT NULL;
