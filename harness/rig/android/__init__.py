"""The Android driver of a real rig: one phone driven through an adb server (adbutils), as the DTG app's
computer. docs/android.md is its contract with the app on the phone.

The package is laid out as Mobly's ``android_device_lib``; import each name from its module (this file
re-exports nothing):

- `harness.rig.android.device`: `AndroidDevice`, the device: install, models pushed and checked by sha256,
  start and stop of the app, liveness, logcat, reboots and recovery;
- `harness.rig.android.adb`: `AdbClient`, its base: every call bounded by a deadline, the adb server,
  ``state``, ``shell``, ``push`` and ``pull``;
- `harness.rig.android.logcat`: `LogcatStream`, a running ``adb shell logcat``;
- `harness.rig.android.model_files`: the files of a models manifest to push, checked on the host;
- `harness.rig.android.errors`: every error (`AdbError` and its kinds), each naming the serial, the command,
  its output and its exit status.

On the loopback rig the same code drives `firmware_sim.phone.device.SimAndroidDevice` through the real adb server.
"""
