-- dbopt demo: foreign keys, added by the loader after the rows (see schema.sql).
-- Declared, but like every foreign key in PostgreSQL they get no index on the referencing
-- side: order_items.product_id, orders.customer_id and events.customer_id are unindexed.

ALTER TABLE orders
  ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id);

ALTER TABLE order_items
  ADD CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id);

ALTER TABLE order_items
  ADD CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id);

ALTER TABLE events
  ADD CONSTRAINT events_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id);
