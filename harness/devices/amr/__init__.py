"""AMR servers (head-ends) as DUTs: the ``AmrServer`` interface and the built-in REST adapter."""
