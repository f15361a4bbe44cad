-- Every order belongs to a customer. Adding the foreign key checks every
-- row of orders while writes are blocked; lull adds it NOT VALID (a brief
-- lock) and then validates it with a lock that lets writes go on.
ALTER TABLE orders
    ADD CONSTRAINT orders_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customers (id);

-- lull:down
ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;
