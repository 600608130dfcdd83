-- kmsuser's next password during a rotation, wrapped by the root key like the current one (with the
-- store id bound as additional data): written before any HSM changes and promoted to
-- wrapped_password once every HSM holds it, so that a crash in between leaves every HSM with a
-- password the store knows. NULL when no rotation is under way.

ALTER TABLE custom_key_stores ADD COLUMN wrapped_pending_password BLOB;
