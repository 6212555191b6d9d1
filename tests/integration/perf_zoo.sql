-- The index zoo of pg_perf_info's tests (issue 15): look-alikes the runbook's indkey::text comparison calls
-- duplicates, and the real duplicates, redundant prefixes, unused, missing and tenant cases. Loaded by psql into
-- a fresh database; the INVALID index (a failed CREATE UNIQUE INDEX CONCURRENTLY) is made by the test itself.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

CREATE TABLE zoo (id bigint PRIMARY KEY, a int NOT NULL, b int, c text, d text, e int, f int, tenant_id int);
INSERT INTO zoo SELECT g, g % 100, g % 7, md5(g::text), 'x' || g, g, g % 50, g % 5 FROM generate_series(1, 2000) g;

-- a unique index and a plain one on the same column: the plain one is the duplicate, the unique one kept
CREATE UNIQUE INDEX zoo_e_key ON zoo (e);
CREATE INDEX zoo_e_plain ON zoo (e);
-- ... and a wider index starting with e: the unique one is never redundant to it
CREATE INDEX zoo_ea ON zoo (e, a);
-- a unique index on the primary key's column: a duplicate of the primary key, which is kept
CREATE UNIQUE INDEX zoo_id_unique ON zoo (id);
-- two identical plain indexes: one pair, reported once
CREATE INDEX zoo_ab_1 ON zoo (a, b);
CREATE INDEX zoo_ab_2 ON zoo (a, b);
-- (a, b DESC) next to (a, b): another ordering, not a duplicate
CREATE INDEX zoo_ab_desc ON zoo (a, b DESC);
-- (a): a leading prefix of (a, b): redundant
CREATE INDEX zoo_a ON zoo (a);
-- text_pattern_ops and COLLATE "C" look-alikes of (c), and (c, d) that makes the plain (c) redundant only
CREATE INDEX zoo_c ON zoo (c);
CREATE INDEX zoo_c_pattern ON zoo (c text_pattern_ops);
CREATE INDEX zoo_c_collate ON zoo (c COLLATE "C");
CREATE INDEX zoo_cd ON zoo (c, d);
-- partial, expression and hash look-alikes of (d); the expression index twice (a real duplicate)
CREATE INDEX zoo_d ON zoo (d);
CREATE INDEX zoo_d_partial ON zoo (d) WHERE b = 1;
CREATE INDEX zoo_d_lower ON zoo (lower(d));
CREATE INDEX zoo_d_lower_2 ON zoo (lower(d));
CREATE INDEX zoo_d_hash ON zoo USING hash (d);
-- an index only a replica scans (the tests query it on the standby)
CREATE INDEX zoo_f ON zoo (f);

-- a partitioned table: its index is dropped without CONCURRENTLY, its partitions' indexes never on their own
CREATE TABLE zoo_parts (id int NOT NULL, tenant_id int) PARTITION BY RANGE (id);
CREATE TABLE zoo_parts_1 PARTITION OF zoo_parts FOR VALUES FROM (0) TO (1000);
CREATE TABLE zoo_parts_2 PARTITION OF zoo_parts FOR VALUES FROM (1000) TO (2000);
CREATE INDEX zoo_parts_tenant ON zoo_parts (tenant_id);

-- a tenant table with its index, and an oddly named one without (fix SQL quotes its name)
CREATE TABLE zoo_tenanted (id int PRIMARY KEY, tenant_id int NOT NULL, note text);
CREATE INDEX zoo_tenanted_tenant_id_idx ON zoo_tenanted (tenant_id, id);
CREATE TABLE "Zoo Odd" (id int PRIMARY KEY, tenant_id int NOT NULL);

-- a table read by sequential scans only (missing-index candidate with the tests' thresholds)
CREATE TABLE zoo_scanned (id int, v text);
INSERT INTO zoo_scanned SELECT g, md5(g::text) FROM generate_series(1, 3000) g;

-- bloat: most rows deleted, never vacuumed
CREATE TABLE zoo_bloat (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
INSERT INTO zoo_bloat SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g;
DELETE FROM zoo_bloat WHERE id % 10 <> 0;
ANALYZE zoo, zoo_tenanted, zoo_scanned, zoo_bloat;

-- sequences: a smallserial near its maximum, a sequence with a small MAXVALUE at 80 %
CREATE TABLE zoo_small (id smallserial PRIMARY KEY);
SELECT setval('zoo_small_id_seq', 30000);
CREATE SEQUENCE zoo_seq MAXVALUE 101;
SELECT setval('zoo_seq', 81);
