-- A new nullable column: instant by itself, but it needs an ACCESS EXCLUSIVE
-- lock on orders. Queued behind a long read transaction, it makes every
-- later query on orders wait too. lull tries it with a short lock_timeout
-- and retries instead of queueing.
ALTER TABLE orders ADD COLUMN status text;

-- lull:down
ALTER TABLE orders DROP COLUMN status;
