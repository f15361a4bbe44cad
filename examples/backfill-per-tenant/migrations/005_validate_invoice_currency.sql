-- Every invoice has a currency now: say so in the schema. lull adds the
-- constraint NOT VALID, validates it without blocking writes, then sets
-- NOT NULL using the validated CHECK (no second scan).
ALTER TABLE invoices ALTER COLUMN currency SET NOT NULL;
DROP INDEX CONCURRENTLY invoices_missing_currency;
