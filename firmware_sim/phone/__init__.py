"""The simulated Android side: the DTG app, its rule-based detector, the DTG package a simulated phone installs,
and the simulated phone speaking ADB."""
