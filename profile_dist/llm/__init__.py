"""The LLM annotation engine: globally rate-limited, async, cached and resumable calls to OpenAI-compatible APIs.

- ``endpoints``  named endpoints from YAML (``--endpoints FILE`` / ``$PROFILE_ENDPOINTS``, ``--llm NAME``)
- ``engine``     ``LLMEngine`` / ``run_llm_requests``: requests in, results out in order (the entry point)
- ``limiter``    the shared rate limiter (a named Ray actor) and each worker's ``Pacer``
- ``worker``     async worker actors: the openai client, retries, re-asks
- ``actor``      the worker actor's Ray shell, importable without openai (the driver never loads the client)
- ``cache``      the content-addressed reply cache (append-only, SIGKILL-safe)
- ``structured`` JSON-schema replies: response_format, validation, re-ask messages
- ``budget``     cost projection, dry run and --max-cost
- ``tokens``     token estimates before sending (tiktoken or a documented fallback)
- ``step``       what the judge and generate stages share: endpoint, cache dir, projection, cost records
- ``request``    ``LLMRequest`` / ``LLMResult`` and the cache key
- ``progress``   counters, the progress bar and the run summary
"""
