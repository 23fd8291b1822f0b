"""Running a scenario end to end: assembling the chain, watching it, judging it."""
