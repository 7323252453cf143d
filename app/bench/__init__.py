"""`homeward bench`: the PERF benchmark of DESIGN §12, measured against references taken in the
same run on the same machine (a scratch PostgreSQL database, a real server, a separate load
generator, the raw-driver ceiling)."""
