"""Storage of results, aspects, batch jobs and trends behind one interface per concern."""
