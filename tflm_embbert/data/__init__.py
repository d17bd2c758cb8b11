"""Stage 1, text: the WordPiece tokenizer, task datasets and user files, encoding, metrics."""
