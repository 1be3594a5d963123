"""The farm: many posting bots as rows in the store, their ticks shared out between workers."""
