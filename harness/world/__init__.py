"""The world a drive happens in: cycles, routes, the vehicle plant, anomalies, scenario and sweep files, recorded
drives, datasets, the bus-fault schedule."""
