"""The pipeline's actors: thin glue that moves batches and calls into models/ and stores/."""
