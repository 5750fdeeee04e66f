-- Which source gave the grant an `add` carries out (`roles.yaml`, `grants.csv`, `sql`,
-- `ldap`; several, comma-separated, when several gave it): `history --email` and the console
-- say where a role came from. NULL for removals and for runs recorded before this column.
ALTER TABLE run_actions ADD COLUMN source TEXT;
