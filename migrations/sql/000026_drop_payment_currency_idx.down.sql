-- As in 000004. CONCURRENTLY, one statement per file: see 000002.
CREATE INDEX CONCURRENTLY payment_currency_idx ON payment (currency);
