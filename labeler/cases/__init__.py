"""Cases: several photos of one patient labeled together (docs/domain.md section 11)."""
