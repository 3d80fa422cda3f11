"""The directory: guest and member user objects (Graph-shaped), kept in the store."""
