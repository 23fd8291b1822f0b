"""The rig: rig files, the rest-bus, fault injectors, the UART tap, the GNSS feed, the Android driver, the phone
set-up, recording."""
