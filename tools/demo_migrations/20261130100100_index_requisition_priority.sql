-- The runbook's index on a large table (section 3): CREATE INDEX CONCURRENTLY cannot run in a transaction.
-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY idx_requisitions_priority ON requisitions (priority) WHERE priority IS NOT NULL;

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY idx_requisitions_priority;
