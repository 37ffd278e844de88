"""The contracts: pure, frozen types shared by every layer (no I/O, no SQL, no torch)."""
