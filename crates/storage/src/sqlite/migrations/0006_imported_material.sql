-- Imported key material (keys of origin EXTERNAL): each material's import state, expiry and description.
--
-- Every column is NULL for material a key store generated; import_state is set exactly for imported material.
-- While the material is deleted or expired (PENDING_IMPORT), `wrapped` is an empty blob and only the id remains.

ALTER TABLE key_materials ADD COLUMN import_state TEXT;
ALTER TABLE key_materials ADD COLUMN expiration_model TEXT;
ALTER TABLE key_materials ADD COLUMN valid_to INTEGER;
ALTER TABLE key_materials ADD COLUMN import_description TEXT;
ALTER TABLE key_materials ADD COLUMN pending_rotation INTEGER CHECK (pending_rotation IN (0, 1));

-- The background worker asks for keys whose imported material has expired; only expiring imports are indexed.
CREATE INDEX key_materials_by_valid_to ON key_materials (valid_to) WHERE valid_to IS NOT NULL;
