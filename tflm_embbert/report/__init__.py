"""What a run folder tells its reader, after the TFLM check: predictions.csv for the test split,
per-class figures, PNG pictures and the report.md that links them (`run_report`)."""
