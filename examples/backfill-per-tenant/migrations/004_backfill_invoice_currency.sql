-- The backfill: each business's invoices take its currency. lull runs it
-- in keyset batches of invoices.id, one business after the other (no batch
-- mixes businesses), each batch its own short transaction with its
-- progress, held while a standby lags or autovacuum works on the table.
-- lull:backfill per=business_id
UPDATE invoices SET currency = b.currency
FROM businesses b
WHERE b.id = invoices.business_id AND invoices.currency IS NULL;
