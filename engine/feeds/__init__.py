"""Market data: sources (simulated venues, FIX market data, tick-store replay), normalization,
integrity checks, the tick store, and the kernel's market-data stage (``MarketData``)."""
