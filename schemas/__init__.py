"""modq's wire contract: pydantic models, keys, queue names, encode/decode. No I/O."""
