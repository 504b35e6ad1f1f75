"""retrieval: embeddings, FAISS and BM25 indexes, fusion and reranking (derived state only)."""
