"""FAQ knowledge base: files reviewed like code, a live store with revisions, hybrid search."""
