"""What a session shows: tables, the HTML report, OpenMetrics/JUnit figures, plots, sensitivity curves."""
