"""People's qualifications: per step kind, for QC review, for bedside witnessing (SEC-5)."""
