"""Readers converting data users already have into the geocsp dataset format.

- :mod:`geocsp.data.readers.inat`: the paper's iNat2018 / fMoW release layout (spec §7).
- :mod:`geocsp.data.readers.table`: any CSV/Parquet table with user-named columns.
"""
