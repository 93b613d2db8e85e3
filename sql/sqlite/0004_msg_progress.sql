-- smss schema 4 for SQLite: how far the sending of a message in parts got (JSON of
-- smss.transports.base.Progress: transport, concatenation reference, the confirmed parts
-- with their references), so a retry sends only the parts not yet confirmed.
ALTER TABLE msg ADD COLUMN progress TEXT NULL;
