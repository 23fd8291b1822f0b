"""What crosses a wire: signals, CAN databases, UART link codecs, the EdgeAI line format, NMEA, behaviour class
names. Pure codecs; imports only `harness.core`."""
