-- The index the backfill walks: each business's invoices that still lack
-- a currency, in key order. lull builds it CONCURRENTLY outside a
-- transaction; it shrinks to nothing as the backfill goes.
CREATE INDEX invoices_missing_currency ON invoices (business_id, id) WHERE currency IS NULL;
