-- The runbook's additive migration (section 3): a new column with a default, and a working down.
-- migrate:up
ALTER TABLE requisitions ADD COLUMN priority varchar(20) DEFAULT 'normal';

-- migrate:down
ALTER TABLE requisitions DROP COLUMN priority;
