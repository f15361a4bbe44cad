-- Look orders up by customer. Written the way most migrations are: a plain
-- CREATE INDEX holds a SHARE lock on orders, so every write waits for the
-- whole build. lull runs it as CREATE INDEX CONCURRENTLY instead.
CREATE INDEX orders_customer_id_idx ON orders (customer_id);

-- lull:down
DROP INDEX orders_customer_id_idx;
