"""Project-wide pytest hook-up: registers the rig markers.

`sim` tests run on the simulated rig (CI); `hil` tests need a real rig. Markers only filter tests; they never
choose hardware.
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "sim: runs on the simulated rig (CI)")
    config.addinivalue_line("markers", "hil: needs a real rig (USB-CAN adapter, UART tap, Android phone)")
