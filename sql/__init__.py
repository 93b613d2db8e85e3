"""Schema migrations, one numbered file per step and per dialect (mysql/, sqlite/).

Loaded by ``smss.store.migrations``; installed as the package ``smss.sql``.
"""
