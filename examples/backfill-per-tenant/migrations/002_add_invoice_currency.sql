-- A new column, nullable and without a default: a catalog-only change.
ALTER TABLE invoices ADD COLUMN currency text;
