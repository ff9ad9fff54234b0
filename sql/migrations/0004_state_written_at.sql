-- When each pipeline_state row was written (server clock): `funnelhouse
-- status` reports a partition's checkpoint age from it. The pipeline does
-- not send the column; the server fills it on insert.
ALTER TABLE {db}.pipeline_state ADD COLUMN IF NOT EXISTS written_at DateTime DEFAULT now();
