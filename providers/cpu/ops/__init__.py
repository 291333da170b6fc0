"""Op families of the CPU provider: one file per family, each op registered once."""
