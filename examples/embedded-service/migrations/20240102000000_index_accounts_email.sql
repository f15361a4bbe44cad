-- lull builds this CONCURRENTLY, outside a transaction.
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);
